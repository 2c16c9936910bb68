"""A real Dagster webserver and daemon on a free port, over a small simulated landing zone.

The webserver comes up first, with the sensors at their default (running); the fixture records
those statuses and stops both sensors before the daemon starts, so the only runs are the ones a
test launches from the UI (the landing sensor would otherwise ingest every landed day at once).
"""

import contextlib
import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from evergreen.instance import INSTANCE_YAML
from evergreen.ports import free_port
from tests.conftest import SMALL, START, make_settings, simulate_small

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
UI_DAYS = 4
READY_TIMEOUT_S = 120

_SENSORS_QUERY = """
query {
  sensorsOrError(repositorySelector: {repositoryLocationName: "evergreen",
                                      repositoryName: "__repository__"}) {
    __typename
    ... on Sensors { results { name sensorState { id status } } }
  }
}"""
_STOP_SENSOR = """
mutation($id: String) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message }
  }
}"""


@dataclass
class DagsterUI:
    """A running webserver (and daemon) and where its state lives."""

    url: str
    home: Path
    dagster_home: Path
    default_sensor_status: dict[str, str]
    logs: tuple[Path, ...]

    def log_tail(self, chars: int = 3000) -> str:
        """The end of each server log, for a failure message."""
        return "\n".join(f"--- {p.name}\n{p.read_text()[-chars:]}" for p in self.logs if p.exists())


def _default_stop_signals() -> None:
    # A shell may have started us with SIGINT and SIGTERM ignored, which children inherit.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a Dagster CLI in its own process group, so teardown ends its children too."""
    exe = str(Path(sys.executable).with_name(args[0]))
    with log.open("w") as out:
        return subprocess.Popen(
            [exe, *args[1:]], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_default_stop_signals,
        )  # fmt: skip


def _stop(*procs: subprocess.Popen) -> None:
    """SIGTERM each process group, then SIGKILL whatever is left after a short grace."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 3
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):  # stragglers: code servers, run workers
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}})
    response.raise_for_status()
    return response.json()["data"]


def _wait_for_location(url: str, proc: subprocess.Popen, log: Path) -> list[dict]:
    """Poll until the webserver serves the `evergreen` location; returns its sensors."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"dagster-webserver exited:\n{log.read_text()[-3000:]}"
        with contextlib.suppress(httpx.HTTPError):
            found = _graphql(url, _SENSORS_QUERY)["sensorsOrError"]
            if found["__typename"] == "Sensors":
                return found["results"]
        time.sleep(0.5)
    raise AssertionError(f"webserver not ready in {READY_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def _stop_sensors(url: str, sensors: list[dict]) -> None:
    for sensor in sensors:
        done = _graphql(url, _STOP_SENSOR, {"id": sensor["sensorState"]["id"]})["stopSensor"]
        assert done["__typename"] == "StopSensorMutationResult", done


@pytest.fixture
def dagster_ui(tmp_path) -> DagsterUI:
    """Webserver and daemon over a fresh EVERGREEN_HOME holding a small landing zone."""
    settings = make_settings(tmp_path / "home")
    (settings.dagster_home / "dagster.yaml").write_text(INSTANCE_YAML)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("EVERGREEN_")}
    env = {
        **inherited,
        "EVERGREEN_HOME": str(settings.home),
        "DAGSTER_HOME": str(settings.dagster_home),
        "EVERGREEN_LABEL_DELAY_DAYS": str(SMALL["label_delay_days"]),
        # A short partition range keeps the launch dialog and partition health queries small.
        "EVERGREEN_END_DATE": (START + dt.timedelta(days=UI_DAYS)).isoformat(),
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    web_log, daemon_log = tmp_path / "webserver.log", tmp_path / "daemon.log"
    workspace = ["-w", str(ROOT / "workspace.yaml")]
    web = _start(
        ["dagster-webserver", *workspace, "-h", "127.0.0.1", "-p", str(port)], env, web_log
    )
    daemon, started = None, time.monotonic()
    try:
        simulate_small(settings.landing_dir, days=UI_DAYS)  # while the webserver boots
        sensors = _wait_for_location(url, web, web_log)
        log.info("webserver serving the location after %.1f s", time.monotonic() - started)
        defaults = {s["name"]: s["sensorState"]["status"] for s in sensors}
        _stop_sensors(url, sensors)
        daemon = _start(["dagster-daemon", "run", *workspace], env, daemon_log)
        logs = (web_log, daemon_log)
        yield DagsterUI(url, settings.home, settings.dagster_home, defaults, logs)
    finally:
        _stop(*[p for p in (daemon, web) if p is not None])


CHROMIUM = Path("/usr/bin/chromium")
UI_TIMEOUT_MS = 30_000  # one page or element; generous, as the machine may be busy
# Debian's Chromium, never a browser Playwright downloads; headless and quiet on the network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so the page fixture knows the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def page(request):
    """A fresh page in headless Debian Chromium; fails (never skips) when it is not installed.
    A failing test leaves `artifacts/failure-<test>.png` of where the page stood."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(UI_TIMEOUT_MS)
            yield page
            report = getattr(request.node, "report_call", None)
            if report is not None and report.failed:
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=ARTIFACTS / f"failure-{request.node.name}.png")
        finally:
            browser.close()
