"""The supervisor: replicas and the router, kept running across Dagster runs and CLI calls.

Everything it starts is detached and recorded in the state file (``evergreen.rollout.state``)
and the ledger, so whoever comes next (another CLI call, a Dagster run, the watchdog) finds it:

- ``launch`` starts a revision's replicas on free loopback ports (weight 0: no traffic yet),
  ``wait_ready`` waits for their ``/readyz``;
- ``set_weights`` changes the router's weights (state, Caddy and the ledger together);
- ``drain_and_stop`` takes a revision out of traffic gracefully: weight 0, wait until its
  replicas have no request in flight (at least ``drain_s``), then SIGTERM;
- ``reconcile`` is one pass of the watchdog (``python -m evergreen.rollout.supervisor watch``,
  started by ``evergreen serve``): it restarts a dead replica or router, restores the router's
  and the edge's configurations if they were changed outside evergreen (recorded in the ledger
  as drift), replaces a Caddy whose admin socket is gone, marks replicas ready, and retires a
  kept previous revision whose window has passed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import signal
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from evergreen.ports import free_port, port_is_free
from evergreen.rollout import caddy
from evergreen.rollout.caddy import CaddyRef, RouterPolicy, Upstream
from evergreen.rollout.metrics import in_flight
from evergreen.rollout.processes import ProcessRef, is_alive, spawn_detached, terminate
from evergreen.rollout.records import (
    insert_replica_event,
    insert_routing_change,
    now,
    write_rows,
)
from evergreen.rollout.revisions import RevisionSpec
from evergreen.rollout.state import (
    DRAINING,
    FAILED,
    READY,
    STARTING,
    STOPPED,
    ReplicaState,
    RevisionState,
    RolloutBusyError,
    ServingState,
    mutate_state,
    read_state,
    rollout_lock,
)
from evergreen.rollout.targets import (
    ProcessTarget,
    Target,
    default_target,
    is_ready,
    target_named,
)
from evergreen.settings import EvergreenSettings

KEEP_STOPPED_REVISIONS = 20


class RevisionStartError(RuntimeError):
    """A revision's replicas did not become ready; the message holds the log's tail."""


@dataclass(frozen=True)
class SupervisorOptions:
    """Patience of the supervisor."""

    ready_timeout_s: float = 180.0
    stop_grace_s: float = 15.0
    drain_timeout_s: float = 30.0
    max_failed_starts: int = 5  # in a row, each dying before ready: then it stays down
    watch_interval_s: float = 1.0


def replica_weights(state: ServingState) -> list[Upstream]:
    """The router's upstreams: every replica of every live revision, a revision's weight split
    over its ready replicas (0 for one not ready). If no ready replica has weight (the weighted
    revision died), every ready replica of a ready revision gets some: serve rather than fail.

    Weights are the smallest integers in the right proportions: Caddy's weighted round robin
    sends runs of ``weight`` consecutive requests to each upstream in turn, so 9:1 mixes the
    revisions every ten requests where 9000:1000 would every ten thousand."""
    shares = []
    for revision in state.live():
        ready = [r for r in revision.replicas if r.ready]
        for replica in revision.replicas:
            share = Fraction(revision.weight, len(ready)) if replica.ready else Fraction(0)
            shares.append((replica.dial, share))
    if shares and not any(share for _, share in shares):
        fallback = {r.dial for v in state.live() if v.phase == READY for r in v.replicas if r.ready}
        shares = [(dial, Fraction(1 if dial in fallback else 0)) for dial, _ in shares]
    scale = math.lcm(*(share.denominator for _, share in shares)) if shares else 1
    weights = [int(share * scale) for _, share in shares]
    divisor = math.gcd(*weights) or 1
    return [Upstream(dial, w // divisor) for (dial, _), w in zip(shares, weights, strict=True)]


class Supervisor:
    """Starts, watches and stops replicas and the router of one Evergreen home."""

    def __init__(
        self,
        settings: EvergreenSettings,
        target: Target | None = None,
        policy: RouterPolicy | None = None,
        options: SupervisorOptions | None = None,
    ) -> None:
        self.settings = settings
        self.target = target or default_target(settings)
        self.policy = policy or RouterPolicy()
        self.options = options or SupervisorOptions()

    def target_of(self, revision: RevisionState) -> Target:
        """The target the revision's replicas were started with."""
        if revision.target == self.target.name:
            return self.target
        return target_named(revision.target, self.settings)

    # The router.

    def ensure_router(self) -> None:
        """Start the edge and the router if they are not running, and give them the state's
        configuration (idempotent)."""
        with mutate_state(self.settings) as state:
            started = None
            if state.router is None or not is_alive(state.router.process):
                state.router = started = self._start_router(state.router)
                self._apply(state)
            if state.edge is None or not is_alive(state.edge.process):
                try:
                    state.edge = self._start_edge(state.edge, state.router)
                except caddy.RouterError:
                    if started is not None:  # not recorded: the state is not written
                        caddy.stop_caddy(started)
                    raise

    def _start_router(self, previous: CaddyRef | None) -> CaddyRef:
        port = _loopback_port(previous.listen if previous else "")
        workdir = self.settings.serving_dir / "caddy"
        metrics = _loopback_address(previous.metrics if previous else "")
        return caddy.start_caddy("router", f"127.0.0.1:{port}", workdir, metrics)

    def _start_edge(self, previous: CaddyRef | None, router: CaddyRef) -> CaddyRef:
        listen = previous.listen if previous else self._serving_address()
        workdir = self.settings.serving_dir / "caddy"
        # A restarted edge keeps its scrape address: Prometheus's targets stay the same.
        metrics = _loopback_address(previous.metrics if previous else "")
        edge = caddy.start_caddy("edge", listen, workdir, metrics)
        try:
            config = caddy.edge_config(edge.admin, listen, router.listen, self.policy, metrics)
            caddy.load(edge, config)
        except caddy.RouterError:
            caddy.stop_caddy(edge)
            raise
        return edge

    def _serving_address(self) -> str:
        return f"{self.settings.serve_host}:{self.settings.serve_port}"

    def _apply(self, state: ServingState) -> None:
        """Give the router the state's weights (call under the state lock)."""
        if state.router is None:
            return
        caddy.load(state.router, self._router_config(state))

    def _router_config(self, state: ServingState) -> dict:
        """The router's configuration the state calls for."""
        assert state.router is not None
        router = state.router
        upstreams = replica_weights(state)
        return caddy.router_config(
            router.admin, router.listen, upstreams, self.policy, router.metrics
        )

    def serving_url(self) -> str:
        """The address clients use."""
        state = read_state(self.settings)
        return f"http://{state.edge.listen if state.edge else self._serving_address()}"

    # Revisions.

    def reserve_name(self) -> str:
        """A fresh revision name (r0001, r0002, ...)."""
        with mutate_state(self.settings) as state:
            return state.next_name()

    def launch(
        self, spec: RevisionSpec, name: str | None = None, target: Target | None = None
    ) -> str:
        """Start a new revision's replicas at weight 0 on ``target`` (default: the
        supervisor's); returns its name (they may not be ready yet: ``wait_ready``)."""
        target = target or self.target
        with mutate_state(self.settings) as state:
            name = name or state.next_name()
            revision = RevisionState(
                name=name, spec=spec, target=target.name, created_at=now(), weight_since=now()
            )
            try:
                for index in range(spec.replicas):
                    port = free_port()
                    replica = target.start_replica(self.settings, name, spec, index, port)
                    revision.replicas.append(replica)
            except Exception:
                for replica in revision.replicas:  # started before the failure: not recorded
                    target.kill_replica(replica)
                raise
            state.revisions[name] = revision
            self._apply(state)
        started = [
            (name, r.index, "started", r.process.pid if r.process else None, r.port, spec.source)
            for r in revision.replicas
        ]
        self._record_replica_events(started)
        return name

    def wait_ready(self, name: str, timeout_s: float | None = None) -> float:
        """Wait until every replica of ``name`` answers ``/readyz``; returns the seconds taken.
        Raises ``RevisionStartError`` (with the log's tail) if one exits or times out."""
        began = time.monotonic()
        deadline = began + (timeout_s or self.options.ready_timeout_s)
        replicas = read_state(self.settings).revisions[name].replicas
        waiting = {r.index for r in replicas if not r.ready}
        while waiting:
            revision = read_state(self.settings).revisions[name]
            target = self.target_of(revision)
            for replica in revision.replicas:
                if replica.index not in waiting:
                    continue
                if not target.is_alive(replica):
                    raise RevisionStartError(
                        f"{name} replica {replica.index} ({revision.spec.source}) exited before "
                        f"it was ready; its log ends:\n{target.describe_failure(replica)}"
                    )
                if is_ready(replica):
                    self._mark_ready(name, replica)
                    waiting.discard(replica.index)
            if waiting and time.monotonic() > deadline:
                replica = revision.replicas[min(waiting)]
                raise RevisionStartError(
                    f"{name} was not ready after {timeout_s or self.options.ready_timeout_s:.0f}"
                    f" s; its log ends:\n{target.describe_failure(replica)}"
                )
            if waiting:
                time.sleep(0.2)
        with mutate_state(self.settings) as state:
            if state.revisions[name].phase == STARTING:
                state.revisions[name].phase = READY
        return time.monotonic() - began

    def revive(self, name: str) -> list[int]:
        """Restart the dead replicas of a revision that must serve and wait until they are
        ready; returns the replicas restarted."""
        restarted = []
        with mutate_state(self.settings) as state:
            revision = state.revisions[name]
            for replica in list(revision.replicas):
                if not self.target_of(revision).is_alive(replica):
                    revision.replicas[replica.index] = self._restart(revision, replica)
                    restarted.append(replica.index)
            if restarted:
                self._apply(state)
        if restarted:
            self.wait_ready(name)
        return restarted

    def _restart(self, revision: RevisionState, replica: ReplicaState) -> ReplicaState:
        """A fresh replica in place of a dead one, on the same port if it is free (call under
        the state lock)."""
        target = self.target_of(revision)
        target.kill_replica(replica)  # orphaned workers would hold the port
        port = replica.port if port_is_free(replica.port) else free_port()
        fresh = target.start_replica(
            self.settings, revision.name, revision.spec, replica.index, port
        )
        fresh.restarts = replica.restarts + 1
        fresh.failed_starts = 0 if replica.ready else replica.failed_starts + 1
        dead = replica.process.pid if replica.process else None
        pid = fresh.process.pid if fresh.process else None
        events = [
            (revision.name, replica.index, "died", dead, replica.port, "not running"),
            (revision.name, replica.index, "restarted", pid, port, f"restart {fresh.restarts}"),
        ]
        self._record_replica_events(events)
        return fresh

    def _mark_ready(self, name: str, seen: ReplicaState) -> None:
        index = seen.index
        with mutate_state(self.settings) as state:
            replica = state.revisions[name].replicas[index]
            if replica.process != seen.process or replica.container != seen.container:
                return  # replaced meanwhile: the new one is not the one that answered
            target = self.target_of(state.revisions[name])
            if isinstance(target, ProcessTarget):
                target.record_workers(replica)
            replica.ready = True
            self._apply(state)
        pid = replica.process.pid if replica.process else None
        ready = [(name, index, "ready", pid, replica.port, "readyz 200")]
        self._record_replica_events(ready)

    def set_weights(
        self, weights: dict[str, int], cause: str, rollout_id: str | None = None
    ) -> dict[str, int]:
        """Give revisions new weights (percent); the router applies them at once, and the
        change and its cause are recorded. Returns every live revision's weight."""
        with mutate_state(self.settings) as state:
            for name, weight in weights.items():
                revision = state.revisions[name]
                if revision.weight != weight:
                    revision.weight, revision.weight_since = weight, now()
            self._apply(state)
            applied = state.weights()
            models = {r.name: r.model_version for r in state.live()}
        write_rows(
            self.settings,
            lambda conn: insert_routing_change(conn, applied, models, cause, rollout_id),
        )
        return applied

    def _record_replica_events(self, events: list[tuple]) -> None:
        """Record replica events in the ledger, each ``(revision, replica, event, pid, port,
        detail)``."""

        def insert(conn) -> None:
            for event in events:
                insert_replica_event(conn, *event)

        write_rows(self.settings, insert)

    def in_flight(self, name: str) -> float:
        """Requests the revision's replicas are answering right now."""
        revision = read_state(self.settings).revisions[name]
        target = self.target_of(revision)
        return sum(in_flight(r.url) for r in revision.replicas if target.is_alive(r))

    def drain_and_stop(self, name: str, drain_s: float, cause: str) -> float:
        """Take ``name`` out of traffic without cutting a request: weight 0, wait at least
        ``drain_s`` and until nothing is in flight, then stop its replicas. Returns the seconds
        the drain took."""
        with mutate_state(self.settings) as state:
            revision = state.revisions[name]
            if revision.phase in (STOPPED, FAILED):
                return 0.0
            revision.keep_running = False
            revision.phase = DRAINING
        if revision.weight:
            self.set_weights({name: 0}, cause)
        began = time.monotonic()
        time.sleep(drain_s)
        deadline = began + max(drain_s, self.options.drain_timeout_s)
        while self.in_flight(name) > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        drained = time.monotonic() - began
        self.stop_revision(name, f"{cause} (drained in {drained:.1f} s)")
        return drained

    def stop_revision(self, name: str, cause: str, phase: str = STOPPED) -> None:
        """Stop a revision's replicas (SIGTERM, SIGKILL after the grace period) and remove
        them from the router."""
        with mutate_state(self.settings) as state:
            revision = state.revisions[name]
            revision.keep_running = False
        for replica in revision.replicas:
            self.target_of(revision).stop_replica(replica, self.options.stop_grace_s)
        with mutate_state(self.settings) as state:
            revision = state.revisions[name]
            revision.phase, revision.weight, revision.retire_at = phase, 0, None
            for replica in revision.replicas:
                replica.ready = False
            self._apply(state)
            _prune(state)
        stopped = [
            (name, r.index, "stopped", r.process.pid if r.process else None, r.port, cause)
            for r in revision.replicas
        ]
        self._record_replica_events(stopped)

    # The watchdog.

    def reconcile(self) -> list[str]:
        """One watchdog pass: restart what died, mark what became ready, retire what is due.
        Returns what it did."""
        actions = []
        state = read_state(self.settings)
        if state.router is not None and (
            not is_alive(state.router.process)
            or state.edge is None
            or not is_alive(state.edge.process)
        ):
            self.ensure_router()
            actions.append("router restarted")
        elif state.router is not None:
            actions += self.restore_drift()
        for revision in state.live():
            if revision.phase != READY or not revision.keep_running:
                continue
            for replica in revision.replicas:
                actions += self._watch_replica(revision, replica)
        if self._due(read_state(self.settings)):
            try:
                with rollout_lock(self.settings, wait_s=0):
                    actions += self.retire_due()
            except RolloutBusyError:
                pass  # a rollout runs: it retires what it must itself
        return actions

    def restore_drift(self) -> list[str]:
        """Compare the router's and the edge's live configurations with the ones the state
        calls for; where they differ (someone changed one through its admin API: weights, an
        upstream, the admin listener itself), record what it routed, restore the state's, and
        record that. A Caddy alive without its admin socket (moved to a TCP port, or the file
        deleted) can no longer be checked: it is replaced. Returns what it did."""
        with mutate_state(self.settings) as state:  # no weight change can slip in between
            if state.router is None or not is_alive(state.router.process):
                return []
            replaced = self._replace_unreachable(state)
            found = {}
            for ref, intended in self.intended_configs(state):
                try:
                    live = caddy.current_config(ref)
                except caddy.RouterError:
                    continue  # not answering: the next pass retries it
                if live != intended:
                    found[ref.role] = caddy.routed_shares(live)
                    caddy.load(ref, intended)
            if not found and not replaced:
                return []
            by_dial = {r.dial: v.name for v in state.live() for r in v.replicas}
            by_dial[state.router.listen] = "router"
            models = {r.name: r.model_version for r in state.live()}
            applied = state.weights()
        actions = [f"{role} replaced: {why}" for role, why in replaced]
        changes = [
            (applied, f"{role} replaced: {why}; the state's configuration again")
            for role, why in replaced
        ]
        for role, shares in found.items():
            foreign = ", ".join(f"{dial} {share}" for dial, share in shares.items())
            foreign = foreign or "no upstream"
            weights = _revision_shares(shares, by_dial)
            if role == "edge" and weights == {"router": 100}:  # still all to the router
                weights = applied
            cause = (
                f"{role} drift found: its live configuration was changed outside evergreen "
                f"(routing {foreign})"
            )
            restored = f"{role} drift restored: the state's weights again"
            changes += [(weights, cause), (applied, restored)]
            actions.append(f"{role} drift restored (it routed {foreign})")

        def record(conn) -> None:
            for weights, cause in changes:
                insert_routing_change(conn, weights, models, cause, None)

        if changes:
            write_rows(self.settings, record)
        return actions

    def intended_configs(self, state: ServingState) -> list[tuple[CaddyRef, dict]]:
        """Each running Caddy and the configuration the state calls for (as JSON reads it)."""
        pairs = [(state.router, self._router_config(state))]
        if state.edge is not None and is_alive(state.edge.process):
            edge = state.edge
            config = caddy.edge_config(
                edge.admin, edge.listen, state.router.listen, self.policy, edge.metrics
            )
            pairs.append((edge, config))
        return [(ref, json.loads(json.dumps(config))) for ref, config in pairs]

    def drift(self) -> list[str]:
        """What differs now between the running router and edge and the state, without
        changing anything (``evergreen status``; the watchdog's pass restores it)."""
        state = read_state(self.settings)
        if state.router is None or not is_alive(state.router.process):
            return []
        found = []
        for ref, intended in self.intended_configs(state):
            if caddy.admin_gone(ref):
                found.append(f"{ref.role}: nothing listens on its admin socket {ref.admin}")
                continue
            try:
                live = caddy.current_config(ref)
            except caddy.RouterError:
                continue  # slow to answer is not drift
            if live != intended:
                shares = caddy.routed_shares(live)
                routing = ", ".join(f"{dial} {share}" for dial, share in shares.items())
                found.append(
                    f"{ref.role}: its live configuration differs from the state's "
                    f"(routing {routing or 'no upstream'})"
                )
        return found

    def _replace_unreachable(self, state: ServingState) -> list[tuple[str, str]]:
        """Replace a router or edge whose admin socket is gone while it runs (call under the
        state lock); returns (role, why) of each."""
        replaced = []
        for ref in (state.router, state.edge):
            if ref is None or not is_alive(ref.process) or not caddy.admin_gone(ref):
                continue
            why = f"nothing listens on its admin socket {ref.admin} (moved or deleted)"
            caddy.stop_caddy(ref, grace_s=self.options.stop_grace_s)
            if ref.role == "router":
                state.router = self._start_router(ref)
                self._apply(state)
            else:
                assert state.router is not None
                state.edge = self._start_edge(ref, state.router)
            replaced.append((ref.role, why))
        return replaced

    def _watch_replica(self, seen_revision: RevisionState, seen: ReplicaState) -> list[str]:
        name = seen_revision.name
        if self.target_of(seen_revision).is_alive(seen):
            if not seen.ready and is_ready(seen):
                self._mark_ready(name, seen)
                return [f"{name}/{seen.index} ready"]
            return []
        with mutate_state(self.settings) as state:
            revision = state.revisions[name]
            replica = revision.replicas[seen.index]
            replaced = replica.process != seen.process or replica.container != seen.container
            if replaced or not revision.keep_running:
                return []  # someone else acted on it meanwhile
            if replica.failed_starts >= self.options.max_failed_starts:
                return []  # it dies at every start: leave it down (its log says why)
            revision.replicas[seen.index] = self._restart(revision, replica)
            self._apply(state)  # the dead one out of the weights, its share goes elsewhere
        return [f"{name}/{seen.index} restarted"]

    def retire_due(self, force: bool = False) -> list[str]:
        """Drain and stop kept previous revisions whose window has passed (all, if ``force``).
        Call it holding the rollout lock: a rollback may be about to serve the kept one."""
        due = self._due(read_state(self.settings), force)
        for name in due:
            self.drain_and_stop(name, drain_s=0.5, cause=f"{name} retired: its keep window ended")
        return [f"{name} retired" for name in due]

    @staticmethod
    def _due(state: ServingState, force: bool = False) -> list[str]:
        return [
            r.name
            for r in state.live()
            if r.retire_at and r.name != state.stable and (force or r.retire_at <= now())
        ]

    def ensure_watchdog(self) -> ProcessRef:
        """Start the watchdog process unless one runs for this home."""
        with mutate_state(self.settings) as state:
            if state.watchdog is not None and is_alive(state.watchdog):
                return state.watchdog
            from evergreen.features.repo import PROJECT_ROOT
            from evergreen.serving.process import serving_env

            argv = [sys.executable, "-m", "evergreen.rollout.supervisor", "watch"]
            argv += ["--home", str(self.settings.home)]
            state.watchdog = spawn_detached(
                argv,
                env=serving_env(self.settings),
                cwd=PROJECT_ROOT,
                log_path=self.settings.serving_dir / "watchdog.log",
            )
            return state.watchdog

    def keep_watchdog_alive(self) -> str | None:
        """Start the watchdog again if something serves and it died (it is what restarts dead
        replicas: killed with it, a dead replica stayed down); returns what it did."""
        state = read_state(self.settings)
        stable = state.revisions.get(state.stable) if state.stable else None
        if stable is None or stable.phase != READY or is_alive(state.watchdog):
            return None
        started = self.ensure_watchdog()
        return f"watchdog was not running: started it again (pid {started.pid})"

    def watch(self) -> None:
        """Run ``reconcile`` every interval until SIGTERM, or until this process is no longer
        the recorded watchdog (a newer one took over, or ``evergreen stop``)."""
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        me = ProcessRef.of(_own_pid())
        while not stopping:
            state = read_state(self.settings)
            if state.watchdog != me:
                return
            try:
                for action in self.reconcile():
                    print(f"{dt.datetime.now(dt.UTC):%H:%M:%S} {action}", flush=True)
            except Exception as error:  # keep watching: one failed pass is not the end
                print(f"{dt.datetime.now(dt.UTC):%H:%M:%S} reconcile failed: {error}", flush=True)
            time.sleep(self.options.watch_interval_s)

    # Everything.

    def stop_all(self, cause: str = "evergreen stop") -> list[str]:
        """Stop the watchdog, every replica and the router; record that nothing serves.
        Returns what it stopped (revisions by name, the watchdog, the router, the edge)."""
        with mutate_state(self.settings) as state:
            watchdog, state.watchdog = state.watchdog, None
        stopped = []
        if watchdog is not None and is_alive(watchdog):
            stopped.append("the watchdog")
        if watchdog is not None:
            terminate([watchdog], grace_s=5)
        state = read_state(self.settings)
        caddies = [f"the {r.role}" for r in (state.router, state.edge) if r and is_alive(r.process)]
        if state.edge is not None:
            caddy.stop_caddy(state.edge)  # graceful: requests in flight are answered first
        for revision in state.live():
            self.stop_revision(revision.name, cause)
            stopped.append(revision.name)
        with mutate_state(self.settings) as state:
            for ref in (state.router, state.edge):
                if ref is not None:
                    caddy.stop_caddy(ref)
            state.router = state.edge = None
        stopped += caddies
        if stopped:
            write_rows(self.settings, lambda conn: insert_routing_change(conn, {}, {}, cause, None))
        return stopped


def _revision_shares(found: dict[str, int], by_dial: dict[str, str]) -> dict[str, int]:
    """Percent of traffic per revision from a router's per-upstream weights (an upstream no
    revision owns is named by its address)."""
    total = sum(found.values())
    shares: dict[str, int] = {}
    for dial, weight in found.items():
        name = by_dial.get(dial, dial)
        shares[name] = shares.get(name, 0) + (round(100 * weight / total) if total else 0)
    return shares


def _loopback_port(previous: str) -> int:
    """The port of ``previous`` (``host:port``) if it is still free, else a free one."""
    port = int(previous.rsplit(":", 1)[1]) if previous else 0
    return port if port and port_is_free(port) else free_port()


def _loopback_address(previous: str) -> str:
    """A loopback ``host:port`` to listen on: ``previous``'s port if still free."""
    return f"127.0.0.1:{_loopback_port(previous)}"


def _own_pid() -> int:
    import os

    return os.getpid()


def _prune(state: ServingState) -> None:
    """Forget the oldest stopped revisions (the ledger keeps their history)."""
    keep = set(state.lineage[-KEEP_STOPPED_REVISIONS:]) | {r.name for r in state.live()}
    stopped = [n for n, r in state.revisions.items() if r.phase in (STOPPED, FAILED)]
    for name in stopped[:-KEEP_STOPPED_REVISIONS]:
        if name not in keep:
            del state.revisions[name]


def main(argv: list[str] | None = None) -> None:
    """``python -m evergreen.rollout.supervisor watch --home HOME``: the watchdog."""
    parser = argparse.ArgumentParser(prog="evergreen.rollout.supervisor")
    parser.add_argument("command", choices=["watch"])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    settings = EvergreenSettings(home=args.home)
    Supervisor(settings, options=SupervisorOptions(watch_interval_s=args.interval)).watch()


if __name__ == "__main__":
    main()
