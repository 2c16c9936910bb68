"""The reports folder over HTTP: links from asset metadata open in a browser, and `evergreen ui`
serves them beside Dagster and stops them with it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from evergreen.ports import free_port
from evergreen.report_server import (
    ReportServerError,
    report_url,
    start_report_server,
    stop_report_server,
)
from evergreen.settings import EvergreenSettings

REPORT = "<html><body>Evidently report of cut-off 2018-04-20</body></html>"


def _settings(tmp_path: Path) -> EvergreenSettings:
    return EvergreenSettings(home=tmp_path / "home", reports_port=free_port()).ensure_dirs()


def _write_report(settings: EvergreenSettings) -> Path:
    path = settings.reports_dir / "evaluations" / "cutoff=2018-04-20" / "report.html"
    path.parent.mkdir(parents=True)
    path.write_text(REPORT)
    return path


def test_a_report_link_opens_over_http_and_outside_paths_stay_files(tmp_path):
    settings = _settings(tmp_path)
    path = _write_report(settings)
    url = report_url(settings, path)
    assert url.startswith(f"http://127.0.0.1:{settings.reports_port}/evaluations/")
    outside = tmp_path / "elsewhere.html"
    assert report_url(settings, outside) == outside.resolve().as_uri()

    server = start_report_server(settings)
    try:
        answer = httpx.get(url, timeout=10)
        assert answer.status_code == 200
        assert answer.text == REPORT
        listing = httpx.get(f"{settings.reports_url}/evaluations/", timeout=10)
        assert "cutoff=2018-04-20" in listing.text  # folders can be browsed
        assert httpx.get(f"{settings.reports_url}/nope.html", timeout=10).status_code == 404
        with pytest.raises(ReportServerError, match=f"port {settings.reports_port} is taken"):
            start_report_server(settings)
    finally:
        stop_report_server(server)
    assert server.poll() is not None
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)


def _wait_for(url: str, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"evergreen ui exited with {process.returncode}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {timeout_s} s")


def test_evergreen_ui_serves_dagster_and_the_reports_and_ctrl_c_stops_both(tmp_path):
    settings = _settings(tmp_path)
    path = _write_report(settings)
    port = free_port()
    env = {
        **os.environ,
        "EVERGREEN_HOME": str(settings.home),
        "EVERGREEN_REPORTS_PORT": str(settings.reports_port),
        "DAGSTER_HOME": str(settings.dagster_home),
    }
    evergreen = str(Path(sys.executable).with_name("evergreen"))
    ui = subprocess.Popen(
        [evergreen, "ui", "--port", str(port)],
        env=env,
        start_new_session=True,  # its own process group: Ctrl-C reaches all of it, as in a shell
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/server_info", ui)
        assert httpx.get(report_url(settings, path), timeout=10).text == REPORT
        os.killpg(ui.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        assert ui.wait(60) == 0  # a Ctrl-C is a normal stop (wait raises if it goes on)
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()
    with pytest.raises(httpx.ConnectError):
        httpx.get(report_url(settings, path), timeout=2)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2)
