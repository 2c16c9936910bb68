"""Hosts in Linux network namespaces for the cluster tests: each host a namespace of its own
(``ip netns add``) with a veth pair to a bridge in the root namespace, every address on a
private /24 (the bridge ``.1``, host ``i`` ``.1i``). A command runs on a host through
``ip netns exec`` (``Hosts.exec_prefix``); servers that the hosts use (PostgreSQL, Redis) listen
on the bridge's address in the root namespace, so the hosts reach them over this "network".

Everything is named ``evg<pid>...`` after the test process that made it, and torn down at the
end even on failure: the hosts' processes killed, the namespaces and the bridge deleted. A run
killed before its teardown leaves them behind; the next run deletes those of dead processes
(``remove_stale``), never another live run's. Needs root (or CAP_NET_ADMIN) and iproute2,
which ``make servers`` installs.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from tests.servers import ensure_debian

PREFIX = "evg"
_NAME = re.compile(rf"^{PREFIX}(\d+)(h\d+o?|br)$")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def namespaces() -> list[str]:
    """The network namespaces that exist (``ip netns list``)."""
    return [line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line]


def _links() -> list[str]:
    out = _ip("-o", "link", "show").stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line]


def _kill_processes_in(namespace: str) -> None:
    """SIGKILL whatever still runs in the namespace (a deleted namespace outlives its
    processes: a worker left there would hold it, and the test's ports, forever)."""
    for pid in _ip("netns", "pids", namespace, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def remove_stale() -> list[str]:
    """Delete the namespaces, bridges and veths of earlier runs whose process is gone;
    returns their names."""
    removed = []
    for name in namespaces() + _links():
        match = _NAME.match(name)
        if not match or _alive(int(match.group(1))):
            continue
        if name in namespaces():
            _kill_processes_in(name)
            _ip("netns", "del", name, check=False)
        else:
            _ip("link", "del", name, check=False)
        removed.append(name)
    return removed


def _free_subnet() -> str:
    """A 10.231.N.0/24 no interface of this machine is on (two runs at once get two)."""
    used = _ip("-o", "-4", "addr").stdout
    start = os.getpid() % 250
    for step in range(250):
        prefix = f"10.231.{(start + step) % 250 + 1}"
        if f" {prefix}." not in used:
            return prefix
    raise RuntimeError("no free 10.231.N.0/24 subnet")


@dataclass(frozen=True)
class Host:
    """One host: its namespace and its address on the test network."""

    name: str
    namespace: str
    address: str

    def exec_prefix(self) -> list[str]:
        """What runs a command on this host: ``ip netns exec <namespace>``."""
        return ["ip", "netns", "exec", self.namespace]


@dataclass(frozen=True)
class Hosts:
    """The test network: the root side's address (the bridge) and the hosts."""

    bridge: str
    gateway: str  # the root namespace's address on the network: servers listen here
    hosts: tuple[Host, ...]


@contextlib.contextmanager
def network_hosts(count: int) -> Iterator[Hosts]:
    """``count`` hosts in namespaces on a bridge, torn down at the end even on failure."""
    ensure_debian("ip", "iproute2")  # as ``make servers`` does, for a bare pytest run
    remove_stale()
    tag = f"{PREFIX}{os.getpid()}"
    bridge = f"{tag}br"
    subnet = _free_subnet()
    made: list[str] = []
    try:
        _ip("link", "add", bridge, "type", "bridge")
        made.append(bridge)
        _ip("addr", "add", f"{subnet}.1/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        hosts = []
        for i in range(1, count + 1):
            host = Host(f"h{i}", f"{tag}h{i}", f"{subnet}.{10 + i}")
            _ip("netns", "add", host.namespace)
            made.append(host.namespace)
            outside, inside = f"{tag}h{i}o", f"{tag}h{i}i"
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", outside, "master", bridge, "up")
            _ip("link", "set", inside, "netns", host.namespace)
            made.append(outside)
            _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", inside)
            _ip("-n", host.namespace, "link", "set", inside, "up")
            _ip("-n", host.namespace, "link", "set", "lo", "up")
            hosts.append(host)
        yield Hosts(bridge, f"{subnet}.1", tuple(hosts))
    finally:
        for name in reversed(made):  # processes and veths first, the bridge last
            if name == bridge or name.endswith("o"):
                _ip("link", "del", name, check=False)  # a veth takes its peer with it
            else:
                _kill_processes_in(name)
                _ip("netns", "del", name, check=False)
