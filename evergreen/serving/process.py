"""A ``bentoml serve`` subprocess: start it on a free loopback port, wait until ready, stop it.

``with BentoProcess("fraud_detection:abc", settings) as served: httpx.post(served.url + ...)``
starts the server in its own process group (BentoML forks a supervisor and workers), waits for
``/readyz`` and always stops the whole group on exit: SIGTERM first, SIGKILL after a grace
period. The server's output goes to ``log_path``; a failed start raises ``ServingStartError``
with the log's tail, so the reason (a missing model, a bad store) is in the error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx

from evergreen.features.repo import PROJECT_ROOT
from evergreen.models.bentoml_home import bentoml_env
from evergreen.ports import LOOPBACK, free_port
from evergreen.settings import EvergreenSettings


class ServingStartError(RuntimeError):
    """The server exited or did not become ready in time."""


def serving_env(
    settings: EvergreenSettings, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a serving process: this home's online store, prediction log and
    BentoML stores."""
    env = {**os.environ, **bentoml_env(settings), "EVERGREEN_HOME": str(settings.home)}
    return {**env, **(extra or {})}


class BentoProcess:
    """``bentoml serve TARGET`` on ``host:port``; a context manager that is ready inside."""

    def __init__(
        self,
        target: str,
        settings: EvergreenSettings,
        *,
        port: int | None = None,
        host: str = LOOPBACK,
        args: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        ready_timeout_s: float = 120.0,
    ) -> None:
        self.target = target
        self.settings = settings
        self.host = host
        self.port = port or free_port(host)
        self._own_port = port is None
        self.args = dict(args or {})
        self.env = serving_env(settings, env)
        self.log_path = log_path or Path(tempfile.mkdtemp(prefix="bento-serve-")) / "serve.log"
        self.ready_timeout_s = ready_timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "bentoml", "serve", self.target]
        cmd += ["--host", self.host, "--port", str(self.port)]
        for key, value in self.args.items():
            cmd += ["--arg", f"{key}={value}"]
        return cmd

    def start(self) -> BentoProcess:
        """Launch the server (returns at once; ``wait_ready`` waits)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop() ends all of it
            )
        return self

    def wait_ready(self, timeout_s: float | None = None) -> float:
        """Poll ``/readyz`` until it answers 200; returns the seconds it took."""
        assert self.process is not None, "start() first"
        began = time.monotonic()
        deadline = began + (timeout_s or self.ready_timeout_s)
        restarts = 1
        with httpx.Client(timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None and restarts and _port_taken(self.log_tail()):
                    # A port found free (ours, or BentoML's for its supervisor's control
                    # socket) was taken by another process before the server bound it: start
                    # again, once, on newly picked ports.
                    restarts -= 1
                    if self._own_port:
                        self.port = free_port(self.host)
                    self.start()
                    continue
                if self.process.poll() is not None:
                    raise ServingStartError(
                        f"{self.target} exited with code {self.process.returncode} before "
                        f"it was ready:\n{self.log_tail()}"
                    )
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return time.monotonic() - began
                except httpx.HTTPError:
                    pass  # not listening yet
                time.sleep(0.25)
        raise ServingStartError(
            f"{self.target} was not ready on {self.url} after {timeout_s or self.ready_timeout_s}"
            f" s:\n{self.log_tail()}"
        )

    def stop(self, grace_s: float = 15.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``grace_s``; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        group = os.getpgid(self.process.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            return self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            return self.process.wait(5.0)
        finally:
            _reap_group(group)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's output."""
        if not self.log_path.exists():
            return "(no output)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def __enter__(self) -> BentoProcess:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _reap_group(group: int) -> None:
    """SIGKILL what is left of the group (a worker that outlived its supervisor)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def _port_taken(log: str) -> bool:
    """True when the server's log says it could not bind a port another process holds."""
    return "Address already in use" in log
