"""The reports folder over HTTP, so the links in asset metadata open from the Dagster UI.

A browser refuses to follow a ``file://`` link from an ``http://`` page, so an Evidently report
linked by its path would not open from the UI. ``evergreen ui`` therefore runs Caddy's static
``file-server`` (Caddy is already the router; its admin API is off in this mode) on
``settings.reports_url``, and asset metadata links each report there (``report_url``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

from evergreen.ports import LOOPBACK
from evergreen.settings import EvergreenSettings


class ReportServerError(RuntimeError):
    """The report server could not start; the message says why."""


def report_url(settings: EvergreenSettings, path: Path) -> str:
    """Where ``path`` opens in a browser: under ``settings.reports_url`` when it lies in the
    reports folder, else its ``file://`` address."""
    try:
        relative = Path(path).resolve().relative_to(settings.reports_dir.resolve())
    except ValueError:
        return Path(path).resolve().as_uri()
    return f"{settings.reports_url}/{quote(relative.as_posix())}"


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((LOOPBACK, port)) == 0


def start_report_server(settings: EvergreenSettings) -> subprocess.Popen:
    """Serve ``settings.reports_dir`` read-only on ``settings.reports_url`` (directory listings
    on) until the returned process is stopped."""
    from evergreen.rollout.caddy import caddy_binary

    if _port_taken(settings.reports_port):
        raise ReportServerError(
            f"port {settings.reports_port} is taken; set EVERGREEN_REPORTS_PORT to a free one"
        )
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    log = settings.logs_dir / "report-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(caddy_binary()), "file-server", "--root", str(settings.reports_dir)]
    argv += ["--listen", f"{LOOPBACK}:{settings.reports_port}", "--browse"]
    state = settings.serving_dir / "report-server"  # Caddy's data and config, not ~/.local
    state.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "XDG_DATA_HOME": str(state), "XDG_CONFIG_HOME": str(state)}
    with log.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    _wait_listening(process, settings.reports_port, log)
    return process


def _wait_listening(process: subprocess.Popen, port: int, log: Path, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:]
            raise ReportServerError(f"the report server exited at start; its log ends:\n{tail}")
        if _port_taken(port):
            return
        time.sleep(0.05)
    stop_report_server(process)
    raise ReportServerError(f"the report server did not listen on port {port} in {timeout_s} s")


def stop_report_server(process: subprocess.Popen, grace_s: float = 5.0) -> None:
    """Stop the server (SIGTERM, then SIGKILL after ``grace_s``)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
