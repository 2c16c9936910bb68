"""The supervisor's state file: which revisions run where, at which weight, since when.

``<serving_dir>/state.json`` is the truth about what runs now (the ledger keeps the history).
Every change is a read-modify-write under an exclusive file lock (``mutate_state``) and is
written atomically (a temporary file renamed over the old one), so the controller, the
watchdog and the CLI, in different processes, never lose each other's changes.
``rollout_lock`` is held for a whole rollout: one rollout at a time; a controller that died
released it with its process, which is how a restarted one knows to resume. Each write also
rewrites Prometheus's scrape targets (``evergreen.rollout.scrape_targets``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evergreen.rollout.caddy import CaddyRef
from evergreen.rollout.processes import ProcessRef
from evergreen.rollout.revisions import RevisionSpec
from evergreen.settings import EvergreenSettings

# Phases of a revision.
STARTING, READY, DRAINING, STOPPED, FAILED = "starting", "ready", "draining", "stopped", "failed"


class RolloutBusyError(RuntimeError):
    """Another rollout holds the lock."""


@dataclass
class ReplicaState:
    """One replica: where it listens, its processes (or container), whether it is ready."""

    index: int
    port: int
    log: str
    started_at: str
    process: ProcessRef | None = None
    workers: list[ProcessRef] = field(default_factory=list)
    container: str | None = None
    ready: bool = False
    restarts: int = 0
    failed_starts: int = 0  # restarts in a row that died before they were ready
    host: str = "127.0.0.1"  # the address it listens on (another host's: the hosts target)

    @staticmethod
    def from_dict(data: dict) -> ReplicaState:
        data = dict(data)
        data["process"] = ProcessRef(**data["process"]) if data.get("process") else None
        data["workers"] = [ProcessRef(**w) for w in data.get("workers", [])]
        return ReplicaState(**data)

    @property
    def dial(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def processes(self) -> list[ProcessRef]:
        """Its supervisor first, then the workers."""
        return [p for p in [self.process, *self.workers] if p is not None]


@dataclass
class RevisionState:
    """One revision: what it serves, its replicas, its weight (percent) and phase."""

    name: str
    spec: RevisionSpec
    target: str
    created_at: str
    weight: int = 0
    weight_since: str = ""
    phase: str = STARTING
    keep_running: bool = True  # the watchdog restarts its dead replicas
    retire_at: str | None = None  # a kept previous revision is drained and stopped then
    replicas: list[ReplicaState] = field(default_factory=list)

    @staticmethod
    def from_dict(data: dict) -> RevisionState:
        data = dict(data)
        data["spec"] = RevisionSpec.from_dict(data["spec"])
        data["replicas"] = [ReplicaState.from_dict(r) for r in data.get("replicas", [])]
        return RevisionState(**data)

    @property
    def model_version(self) -> str:
        return self.spec.model_version


@dataclass
class ServingState:
    """Everything the supervisor runs."""

    edge: CaddyRef | None = None
    router: CaddyRef | None = None
    watchdog: ProcessRef | None = None
    revisions: dict[str, RevisionState] = field(default_factory=dict)
    stable: str | None = None  # the revision serving when no rollout runs
    lineage: list[str] = field(default_factory=list)  # stable revisions, oldest first
    sequence: int = 0  # revisions named so far

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict) -> ServingState:
        return ServingState(
            edge=CaddyRef.from_dict(data["edge"]) if data.get("edge") else None,
            router=CaddyRef.from_dict(data["router"]) if data.get("router") else None,
            watchdog=ProcessRef(**data["watchdog"]) if data.get("watchdog") else None,
            revisions={
                name: RevisionState.from_dict(r) for name, r in data.get("revisions", {}).items()
            },
            stable=data.get("stable"),
            lineage=list(data.get("lineage", [])),
            sequence=data.get("sequence", 0),
        )

    def live(self) -> list[RevisionState]:
        """Revisions not stopped, oldest first."""
        return [r for r in self.revisions.values() if r.phase not in (STOPPED, FAILED)]

    def weights(self) -> dict[str, int]:
        """Weight (percent) of every live revision."""
        return {r.name: r.weight for r in self.live()}

    @property
    def previous(self) -> str | None:
        """The stable revision before the current one: where a rollback goes."""
        index = self.previous_index()
        return self.lineage[index] if index is not None else None

    def previous_index(self) -> int | None:
        """Where in the lineage the last stable revision of ANOTHER model than the current
        one is. A revision of the same model (``evergreen serve`` after ``evergreen stop``
        starts the champion again as a new revision) is no step to roll back to: a rollback
        there served the same model as before."""
        current = self.revisions.get(self.stable) if self.stable else None
        for index in range(len(self.lineage) - 1, -1, -1):
            revision = self.revisions.get(self.lineage[index])
            if revision is None or revision.name == self.stable:
                continue  # forgotten (pruned) revisions have no spec to start again
            if current is not None and revision.model_version == current.model_version:
                continue
            return index
        return None

    def next_name(self) -> str:
        self.sequence += 1
        return f"r{self.sequence:04d}"


def state_path(settings: EvergreenSettings) -> Path:
    return settings.serving_dir / "state.json"


def read_state(settings: EvergreenSettings) -> ServingState:
    """The state as last written (no lock: writes are atomic renames)."""
    path = state_path(settings)
    if not path.exists():
        return ServingState()
    return ServingState.from_dict(json.loads(path.read_text()))


def _write(settings: EvergreenSettings, state: ServingState) -> None:
    """Write the state, and Prometheus's scrape targets of what it lists (one writer: no
    change of replicas can skip them)."""
    from evergreen.rollout.scrape_targets import write_scrape_targets

    path = state_path(settings)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state.to_dict(), indent=1, sort_keys=True))
    os.replace(tmp, path)
    write_scrape_targets(settings, state)


_held = threading.local()


@contextlib.contextmanager
def mutate_state(settings: EvergreenSettings) -> Iterator[ServingState]:
    """The state, locked against other writers; written back when the block ends without
    an error. Re-entrant in one thread (the inner block shares the outer state)."""
    key = str(state_path(settings))
    nested = getattr(_held, "states", {})
    if key in nested:
        yield nested[key]
        return
    settings.serving_dir.mkdir(parents=True, exist_ok=True)
    with _flock(settings.serving_dir / "state.lock", blocking=True):
        state = read_state(settings)
        _held.states = {**nested, key: state}
        try:
            yield state
            _write(settings, state)
        finally:
            _held.states = nested


@contextlib.contextmanager
def rollout_lock(settings: EvergreenSettings, wait_s: float = 5.0) -> Iterator[None]:
    """Held for a whole rollout; raises ``RolloutBusyError`` naming the holder if it is still
    taken after ``wait_s`` (the watchdog holds it for a moment when it retires a revision)."""
    settings.serving_dir.mkdir(parents=True, exist_ok=True)
    path = settings.serving_dir / "rollout.lock"
    handle = path.open("a+")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                holder = path.read_text().strip() or "another process"
                raise RolloutBusyError(
                    f"a rollout is in progress (pid {holder}); wait for it or see "
                    "`evergreen status`"
                ) from None
            time.sleep(0.05)
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


@contextlib.contextmanager
def _flock(path: Path, blocking: bool) -> Iterator:
    with path.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
