"""The observe stack: a real Prometheus and Alertmanager (Debian's ``prometheus`` and
``prometheus-alertmanager``) on free loopback ports, and Evergreen's own HTTP endpoint beside
them, all under ``settings.observe_dir``.

Evergreen's endpoint (a thread of the process that starts the stack) serves the loop's metrics
(``GET /metrics``, ``evergreen.observe.loop_metrics``) for Prometheus to scrape, and receives
Alertmanager's notifications (``POST /alerts``), recording each alert in the ledger
(``evergreen.observe.alerts``); a body that is not a notification gets a 400 saying why.

Prometheus and Alertmanager run as children of that process and stop with it (``stop``, or the
``with`` block's end): their configuration is rendered at every start, their data (the TSDB,
silences) kept between starts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import yaml

from evergreen.observe.config import ObserveConfig, alertmanager_config, prometheus_config
from evergreen.observe.rules import Thresholds, rule_groups
from evergreen.ports import LOOPBACK, free_port
from evergreen.rollout.scrape_targets import scrape_dir
from evergreen.settings import EvergreenSettings

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"  # Debian's name of the binary
MAX_NOTIFICATION_BYTES = 1 << 20
START_TIMEOUT_S = 30.0


class ObserveError(RuntimeError):
    """The stack could not start; the message says why."""


def binary(name: str) -> str:
    """The path of Debian's ``name`` binary, or an ``ObserveError`` saying how to get it."""
    found = shutil.which(name)
    if not found:
        raise ObserveError(
            f"{name} is not installed: apt-get install prometheus prometheus-alertmanager "
            "(`make servers` does)"
        )
    return found


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # one line per scrape is noise
        pass


def evergreen_app(settings: EvergreenSettings, registry):
    """The WSGI app of Evergreen's endpoint: ``/metrics``, ``POST /alerts``, ``/-/ready``."""
    from prometheus_client import make_wsgi_app

    from evergreen.observe.alerts import BadNotification, record_notification

    metrics = make_wsgi_app(registry)

    def answer(start_response, status: str, body: dict):
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json")])
        return [data]

    def app(environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/-/ready":
            return answer(start_response, "200 OK", {"ready": True})
        if path != "/alerts":
            return answer(start_response, "404 Not Found", {"error": f"no {path}"})
        if method != "POST":
            return answer(start_response, "405 Method Not Allowed", {"error": "POST only"})
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = -1
        if not 0 < size <= MAX_NOTIFICATION_BYTES:
            error = f"a JSON body of 1 to {MAX_NOTIFICATION_BYTES} bytes is needed"
            return answer(start_response, "400 Bad Request", {"error": error})
        try:
            payload = json.loads(environ["wsgi.input"].read(size))
            added = record_notification(settings, payload)
        except (ValueError, BadNotification) as error:  # JSONDecodeError is a ValueError
            return answer(start_response, "400 Bad Request", {"error": str(error)})
        return answer(start_response, "200 OK", {"recorded": added})

    return app


@dataclass
class ObserveStack:
    """Prometheus, Alertmanager and Evergreen's endpoint for one home."""

    settings: EvergreenSettings
    config: ObserveConfig = field(default_factory=ObserveConfig)
    prometheus_port: int = 0  # 0: a free one
    alertmanager_port: int = 0
    processes: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False)
    _server: _Server | None = field(default=None, repr=False)

    @property
    def folder(self) -> Path:
        # Absolute: Prometheus and Alertmanager run in it, and read every path given.
        return self.settings.observe_dir.resolve()

    @property
    def prometheus_url(self) -> str:
        return f"http://{LOOPBACK}:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{LOOPBACK}:{self.alertmanager_port}"

    @property
    def evergreen_url(self) -> str:
        assert self._server is not None
        return f"http://{LOOPBACK}:{self._server.server_port}"

    def thresholds(self) -> Thresholds:
        return self.config.thresholds or Thresholds.of(self.settings)

    def write_config(self) -> dict[str, Path]:
        """Render the rule file and both configurations; returns their paths."""
        self.folder.mkdir(parents=True, exist_ok=True)
        targets = scrape_dir(self.settings).resolve()
        targets.mkdir(parents=True, exist_ok=True)
        paths = {
            "rules": self.folder / "rules.yml",
            "prometheus": self.folder / "prometheus.yml",
            "alertmanager": self.folder / "alertmanager.yml",
        }
        rules = rule_groups(self.thresholds(), self.config.timing)
        paths["rules"].write_text(yaml.safe_dump(rules, sort_keys=False, width=1000))
        exporter = f"{LOOPBACK}:{self._server.server_port}" if self._server else ""
        prometheus = prometheus_config(
            self.config,
            targets,
            paths["rules"],
            exporter,
            f"{LOOPBACK}:{self.alertmanager_port}",
        )
        paths["prometheus"].write_text(yaml.safe_dump(prometheus, sort_keys=False))
        receiver = f"{self.evergreen_url}/alerts" if self._server else ""
        alertmanager = alertmanager_config(self.config, receiver)
        paths["alertmanager"].write_text(yaml.safe_dump(alertmanager, sort_keys=False))
        return paths

    def start(self) -> ObserveStack:
        """Start the endpoint, Alertmanager and Prometheus; wait until each is ready."""
        from prometheus_client import generate_latest

        from evergreen.observe.loop_metrics import loop_registry

        if self.processes or self._server is not None:
            raise ObserveError("this stack is already started")
        prometheus, alertmanager = binary(PROMETHEUS), binary(ALERTMANAGER)
        self.prometheus_port = self.prometheus_port or free_port()
        self.alertmanager_port = self.alertmanager_port or free_port()
        registry = loop_registry(self.settings)
        # A first collection while the servers start: importing Dagster and opening its
        # instance takes seconds, which the first scrapes would otherwise time out on.
        threading.Thread(target=generate_latest, args=(registry,), daemon=True).start()
        app = evergreen_app(self.settings, registry)
        self._server = make_server(
            LOOPBACK, free_port(), app, server_class=_Server, handler_class=_QuietHandler
        )
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        try:
            paths = self.write_config()
            self._spawn(
                "alertmanager",
                [
                    alertmanager,
                    f"--config.file={paths['alertmanager']}",
                    f"--storage.path={self.folder / 'alertmanager'}",
                    f"--web.listen-address={LOOPBACK}:{self.alertmanager_port}",
                    "--cluster.listen-address=",  # one instance: no gossip port
                ],
            )
            self._spawn(
                "prometheus",
                [
                    prometheus,
                    f"--config.file={paths['prometheus']}",
                    f"--storage.tsdb.path={self.folder / 'tsdb'}",
                    f"--web.listen-address={LOOPBACK}:{self.prometheus_port}",
                    "--storage.tsdb.retention.time=30d",
                ],
            )
            self._wait_ready("alertmanager", self.alertmanager_url)
            self._wait_ready("prometheus", self.prometheus_url)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = self.folder / f"{name}.log"
        with log.open("ab") as out:
            # Their own session: a terminal's Ctrl-C reaches only the process that started
            # them, which then stops them (``stop``), never half of them on their own.
            self.processes[name] = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.folder, start_new_session=True
            )

    def _wait_ready(self, name: str, url: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise ObserveError(f"{name} exited at start; its log ends:\n{self.log_tail(name)}")
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise ObserveError(f"{name} was not ready after {START_TIMEOUT_S:.0f} s on {url}")

    def log_tail(self, name: str, chars: int = 2000) -> str:
        log = self.folder / f"{name}.log"
        return log.read_text(errors="replace")[-chars:] if log.exists() else ""

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop Prometheus and Alertmanager (SIGTERM, SIGKILL after ``grace_s``) and the
        endpoint."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(grace_s)
        self.processes.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ObserveStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # Asking the servers.

    def query(self, promql: str) -> list[dict]:
        """An instant query's result vector."""
        response = httpx.get(
            f"{self.prometheus_url}/api/v1/query", params={"query": promql}, timeout=5
        )
        response.raise_for_status()
        return response.json()["data"]["result"]

    def firing(self) -> list[dict]:
        """Prometheus's alerts now (pending and firing), with labels and state."""
        response = httpx.get(f"{self.prometheus_url}/api/v1/alerts", timeout=5)
        response.raise_for_status()
        return response.json()["data"]["alerts"]
