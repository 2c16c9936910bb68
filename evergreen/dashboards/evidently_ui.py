"""``evidently ui`` over this home's workspace, beside Dagster in ``evergreen ui``.

``EvidentlyUI(settings).start()`` runs Evidently's own service on loopback, on a free port
unless one is given, in its own process group (its web server may fork), waits until its API
answers and ``stop()`` ends the group. Telemetry is off (``DO_NOT_TRACK``): the service never
calls out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from evergreen.dashboards.evidently_workspace import workspace_path
from evergreen.ports import LOOPBACK, free_port
from evergreen.settings import EvergreenSettings


class EvidentlyUIError(RuntimeError):
    """The Evidently UI did not start; the message says why, with its log's tail."""


class EvidentlyUI:
    """``evidently ui --workspace <home>/evidently`` on ``127.0.0.1:<port>``."""

    def __init__(self, settings: EvergreenSettings, port: int | None = None) -> None:
        self.settings = settings
        self.port = port or free_port(LOOPBACK)
        self.workspace = workspace_path(settings)
        self.log_path = settings.logs_dir / "evidently-ui.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        evidently = Path(sys.executable).with_name("evidently")
        return [
            str(evidently),
            "ui",
            "--workspace",
            str(self.workspace),
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
        ]

    def start(self, timeout_s: float = 90.0) -> EvidentlyUI:
        """Start the service and wait until ``/api/projects`` answers 200."""
        self.launch()
        self.wait_ready(timeout_s)
        return self

    def launch(self) -> EvidentlyUI:
        """Start the service and return at once (``wait_ready`` waits: Dagster can start
        meanwhile)."""
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "DO_NOT_TRACK": "1"}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # its own group: stop() ends all of it
            )
        return self

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Wait until the API answers; stop the service and raise ``EvidentlyUIError`` if it
        exits or does not answer within ``timeout_s``."""
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EvidentlyUIError(
                    f"evidently ui exited with code {self.process.returncode} at start; its log "
                    f"({self.log_path}) ends:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/projects", timeout=2.0).status_code == 200:
                    return
            time.sleep(0.25)
        raise EvidentlyUIError(
            f"evidently ui did not answer on {self.url} within {timeout_s:.0f} s; its log "
            f"ends:\n{self.log_tail()}"
        )

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM the group, SIGKILL it after ``grace_s``; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever of the group is left
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5.0)
        return self.process.returncode

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no output)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> EvidentlyUI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
