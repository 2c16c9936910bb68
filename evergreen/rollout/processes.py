"""Detached processes: start one that outlives its starter, tell whether it lives, stop it.

A replica or a router must outlive the process that started it (a Dagster run, the CLI), so
it is started through a short-lived launcher: the launcher starts it in a session of its own
and exits at once, and the process is adopted by init. A process is known by its pid AND its
start time, so a pid reused by the OS is never mistaken for it; a zombie counts as dead.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

# Runs in the launcher: start argv in a new session with the log as stdout/stderr, print pid.
_LAUNCHER = """
import json, subprocess, sys
spec = json.loads(sys.stdin.read())
with open(spec["log"], "ab") as log:
    child = subprocess.Popen(spec["argv"], cwd=spec["cwd"], env=spec["env"], stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, close_fds=True)
print(child.pid)
"""


class ProcessStartError(RuntimeError):
    """A detached process could not be launched."""


@dataclass(frozen=True)
class ProcessRef:
    """A process as the state file remembers it: pid and start time (seconds since epoch)."""

    pid: int
    create_time: float

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def of(pid: int) -> ProcessRef:
        """The running process ``pid``."""
        return ProcessRef(pid, psutil.Process(pid).create_time())


def spawn_detached(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_path: Path
) -> ProcessRef:
    """Start ``argv`` detached (own session, stdin closed, output appended to ``log_path``)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    spec = {"argv": list(argv), "env": dict(env), "cwd": str(cwd), "log": str(log_path)}
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise ProcessStartError(f"could not start {argv[0]}: {done.stderr.strip()[-2000:]}")
    pid = int(done.stdout.strip())
    try:
        return ProcessRef.of(pid)
    except psutil.NoSuchProcess:
        tail = log_tail(log_path)
        raise ProcessStartError(f"{argv[0]} exited at once; its log ends:\n{tail}") from None


def is_alive(ref: ProcessRef | None) -> bool:
    """True when the process still runs (same pid and start time, and not a zombie)."""
    if ref is None:
        return False
    try:
        process = psutil.Process(ref.pid)
        if abs(process.create_time() - ref.create_time) > 0.01:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def descendants(ref: ProcessRef) -> list[ProcessRef]:
    """The live processes below ``ref`` (a BentoML supervisor's workers)."""
    if not is_alive(ref):
        return []
    found = []
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(ref.pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                found.append(ProcessRef(child.pid, child.create_time()))
    return found


def terminate(refs: Sequence[ProcessRef], grace_s: float) -> None:
    """SIGTERM the first process (the others are its workers, which it stops gracefully),
    wait up to ``grace_s`` for all of them to end, then SIGKILL whatever is left."""
    living = [r for r in refs if is_alive(r)]
    if not living:
        return
    _signal(living[0], signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(is_alive(r) for r in living):
        time.sleep(0.05)
    kill(living)


def kill(refs: Sequence[ProcessRef]) -> None:
    """SIGKILL every live process of ``refs`` (kill -9) and wait until they are gone."""
    for ref in refs:
        if is_alive(ref):
            _signal(ref, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(is_alive(r) for r in refs):
        time.sleep(0.02)


def stop_group(
    leader: int, grace_s: float, first: signal.Signals = signal.SIGINT, term_s: float = 5.0
) -> list[int]:
    """End the process group led by ``leader`` (started with ``start_new_session=True``) and
    everything in it: ``first`` (Ctrl-C's SIGINT) to the leader, up to ``grace_s`` for the
    group to end, then SIGTERM to the whole group, ``term_s`` more, then SIGKILL. Processes
    that left the group on purpose (detached serving replicas) are not touched. Returns the
    pids that had to be killed."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(leader, first)
    if _group_ended(leader, grace_s):
        return []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader, signal.SIGTERM)
    if _group_ended(leader, term_s):
        return []
    stubborn = _group_members(leader)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader, signal.SIGKILL)
    _group_ended(leader, 10.0)
    return stubborn


def _group_members(pgid: int) -> list[int]:
    members = []
    for process in psutil.process_iter(["pid", "status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(process.pid) == pgid:
                members.append(process.pid)
    return members


def _group_ended(pgid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-pgid, os.WNOHANG)[0] > 0:  # reap our own child, the leader
                pass
        if not _group_members(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _signal(ref: ProcessRef, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(ref.pid, sig)


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file."""
    if not path.exists():
        return "(no output)"
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 16_000))
        text = handle.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])
