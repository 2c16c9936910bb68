"""The rollout controller: deploy, roll back, and resume after a crash, never without a
serving revision.

A deploy takes the rollout lock, settles any rollout a dead controller left open, starts the
new revision at weight 0 and waits for it to be ready; the strategy moves the traffic; then the
new revision becomes the stable one and the previous one is kept for a window or drained and
stopped. A failed analysis moves every request back to the previous revision before the new
one is drained and stopped. Every step is written to the ledger before the next begins, so a
controller restarted after dying mid-rollout (``resume``, or the next deploy) knows where it
was: it completes a rollout whose new revision had taken all traffic and passed every check,
and rolls back any other. The router keeps its weights while no controller runs, so traffic
is served throughout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from evergreen.rollout.analysis import Analysis, AnalysisPolicy
from evergreen.rollout.evidence import AnalysisWindow, warm_up
from evergreen.rollout.processes import ProcessStartError
from evergreen.rollout.records import (
    COMPLETED,
    FAILED,
    ROLLED_BACK,
    Rollout,
    get_rollout,
    insert_rollout,
    insert_step,
    rollout_ledger,
    timestamp,
    unfinished_rollouts,
    write_rows,
)
from evergreen.rollout.revisions import RevisionSpec
from evergreen.rollout.state import (
    FAILED as REVISION_FAILED,
)
from evergreen.rollout.state import (
    READY,
    STOPPED,
    RevisionState,
    mutate_state,
    read_state,
    rollout_lock,
)
from evergreen.rollout.strategies import AnalysisFailed, BlueGreen, Strategy
from evergreen.rollout.supervisor import RevisionStartError, Supervisor
from evergreen.settings import EvergreenSettings


class RolloutFailed(RuntimeError):
    """A rollout did not complete; the previous revision still serves."""

    def __init__(self, message: str, rollout_id: str, rolled_back: bool) -> None:
        super().__init__(message)
        self.rollout_id, self.rolled_back = rollout_id, rolled_back


class NothingToServeError(RuntimeError):
    """No revision to start: no champion and nothing served before."""


@dataclass
class RolloutResult:
    """How a rollout ended, with its steps from the ledger."""

    rollout: Rollout
    duration_s: float
    detail: str = ""

    @property
    def status(self) -> str:
        return self.rollout.status

    @property
    def analyses(self) -> list[dict[str, Any]]:
        return [s.analysis for s in self.rollout.steps if s.analysis]

    def to_dict(self) -> dict[str, Any]:
        r = self.rollout
        return {
            "rollout_id": r.id,
            "kind": r.kind,
            "status": r.status,
            "revision": r.revision,
            "model_version": r.model_version,
            "from_revision": r.from_revision,
            "from_model_version": r.from_model_version,
            "started_at": r.started_at,
            "ended_at": r.ended_at,
            "duration_s": round(self.duration_s, 3),
            "detail": self.detail,
            "steps": [
                {
                    "at": s.at,
                    "phase": s.phase,
                    "weights": s.weights,
                    "outcome": s.outcome,
                    "detail": s.detail,
                }
                for s in r.steps
            ],
        }


@dataclass
class _Run:
    """One rollout in progress: the strategy's handle on it (``RolloutRun``)."""

    controller: RolloutController
    rollout_id: str
    new: str | None
    old: str | None
    seed: int
    analyses: list[Analysis] = field(default_factory=list)

    def record(self, phase: str, outcome: str = "ok", detail: str = "", analysis=None) -> None:
        weights = read_state(self.controller.settings).weights()
        write_rows(
            self.controller.settings,
            lambda conn: insert_step(
                conn, self.rollout_id, phase, weights, outcome, detail, analysis
            ),
        )

    def warm_up(self, requests: int) -> None:
        if requests <= 0:
            return
        revision = read_state(self.controller.settings).revisions[self.new]
        problems = warm_up(self.controller.settings, revision, requests, self.seed)
        if problems:
            self.record("warmup", "failed", "; ".join(problems))
            raise AnalysisFailed(f"warm-up of {self.new} failed: {problems[0]}")
        self.record("warmup", detail=f"{requests} requests to each replica answered")

    def shift(self, weight: int) -> None:
        weights = {self.new: weight, **({self.old: 100 - weight} if self.old else {})}
        self.controller.supervisor.set_weights(
            weights, f"rollout {self.rollout_id}", self.rollout_id
        )
        self.record("shift", detail=", ".join(f"{n} {w}%" for n, w in weights.items()))

    def analyze(self, seconds: float, policy: AnalysisPolicy) -> Analysis:
        settings = self.controller.settings
        window = AnalysisWindow(settings, self.new, self.old, policy, self.seed).open()
        time.sleep(seconds)
        analysis = window.close()
        self.analyses.append(analysis)
        outcome = "ok" if analysis.passed else "failed"
        self.record("analysis", outcome, analysis.summary(), analysis.to_dict())
        if not analysis.passed:
            raise AnalysisFailed(f"{self.new}: {'; '.join(analysis.reasons)}", analysis)
        return analysis

    def switched(self) -> None:
        self.record("switched", detail=f"{self.new} takes all traffic")


class RolloutController:
    """Deploys revisions through the supervisor and records every step in the ledger."""

    def __init__(
        self,
        settings: EvergreenSettings,
        supervisor: Supervisor | None = None,
        actor: str = "evergreen",
    ) -> None:
        self.settings = settings
        self.supervisor = supervisor or Supervisor(settings)
        self.actor = actor

    # Deploying.

    def deploy(self, spec: RevisionSpec, strategy: Strategy, reason: str) -> RolloutResult:
        """Roll ``spec`` out with ``strategy``; raises ``RolloutFailed`` (after rolling back)
        if it did not complete."""
        with rollout_lock(self.settings):
            self._settle_unfinished()
            return self._deploy(spec, strategy, reason)

    def _deploy(self, spec: RevisionSpec, strategy: Strategy, reason: str) -> RolloutResult:
        began = time.monotonic()
        self.supervisor.ensure_router()
        self.supervisor.retire_due(force=True)  # one kept previous revision at a time
        state = read_state(self.settings)
        old = self._serving(state)
        kind = strategy.kind if old else "initial"
        name = self.supervisor.reserve_name()
        rollout_id = self._open(kind, name, spec, old, strategy.to_dict(), reason)
        run = _Run(self, rollout_id, None, old.name if old else None, self.settings.seed)
        try:
            run.new = self.supervisor.launch(spec, name)
            run.record("started", detail=f"{spec.replicas} replica(s) of {spec.source}")
            ready_s = self.supervisor.wait_ready(run.new)
            run.record("ready", detail=f"ready in {ready_s:.1f} s")
        except (RevisionStartError, ProcessStartError) as error:
            self._fail(run, f"{spec.source} did not start: {error}")
        try:
            if old is None:
                run.shift(100)
                run.switched()
            else:
                strategy.run(run)
        except AnalysisFailed as failure:
            self._roll_back(run, str(failure))
            raise RolloutFailed(
                f"rollout {rollout_id} rolled back: {failure}", rollout_id, rolled_back=True
            ) from None
        except Exception as error:
            self._roll_back(run, f"{type(error).__name__}: {error}")
            raise
        self._complete(run, strategy.keep_previous_s, strategy.drain_s)
        return self._result(rollout_id, began)

    def _serving(self, state) -> RevisionState | None:
        stable = state.revisions.get(state.stable) if state.stable else None
        return stable if stable is not None and stable.phase == READY else None

    def _open(
        self,
        kind: str,
        revision: str,
        spec: RevisionSpec,
        old: RevisionState | None,
        config: dict,
        reason: str,
        target: str | None = None,
    ) -> str:
        row = {
            "kind": kind,
            "target": target or self.supervisor.target.name,
            "revision": revision,
            "model_version": spec.model_version,
            "source": spec.source,
            "from_revision": old.name if old else None,
            "from_model_version": old.model_version if old else None,
            "config": {**config, "replicas": spec.replicas},
            "actor": self.actor,
            "reason": reason or f"deploy {spec.source}",
        }
        return write_rows(self.settings, lambda conn: insert_rollout(conn, **row))

    def _fail(self, run: _Run, detail: str) -> None:
        if run.new is not None:
            self.supervisor.stop_revision(run.new, detail, phase=REVISION_FAILED)
        run.record(FAILED, "failed", detail)
        raise RolloutFailed(f"rollout {run.rollout_id} failed: {detail}", run.rollout_id, False)

    def _roll_back(self, run: _Run, why: str) -> None:
        """All traffic back to the old revision, then drain and stop the new one."""
        if run.old is None:
            self._fail(run, why)
        self.supervisor.revive(run.old)
        self.supervisor.set_weights(
            {run.old: 100, run.new: 0}, f"rollback of {run.rollout_id}", run.rollout_id
        )
        run.record("shift", detail=f"{run.old} 100%, {run.new} 0% (rolling back)")
        drained = self.supervisor.drain_and_stop(run.new, 0.5, f"rolled back: {why}")
        run.record(ROLLED_BACK, "failed", f"{why} (new revision drained in {drained:.1f} s)")

    def _complete(self, run: _Run, keep_previous_s: float, drain_s: float) -> None:
        with mutate_state(self.settings) as state:
            state.stable = run.new
            if not state.lineage or state.lineage[-1] != run.new:
                state.lineage.append(run.new)
            if run.old and keep_previous_s > 0:
                retire = time.time() + keep_previous_s
                state.revisions[run.old].retire_at = timestamp(_utc(retire))
        if run.old and keep_previous_s > 0:
            run.record("previous_kept", detail=f"{run.old} kept {keep_previous_s:g} s for rollback")
        elif run.old:
            drained = self.supervisor.drain_and_stop(run.old, drain_s, f"replaced by {run.new}")
            run.record("previous_stopped", detail=f"{run.old} drained in {drained:.1f} s, stopped")
        run.record(COMPLETED, detail=f"{run.new} serves")

    def _result(self, rollout_id: str, began: float, detail: str = "") -> RolloutResult:
        with rollout_ledger(self.settings) as conn:
            rollout = get_rollout(conn, rollout_id)
        return RolloutResult(rollout, time.monotonic() - began, detail)

    # Rolling back by hand.

    def rollback(self, reason: str = "manual rollback") -> RolloutResult:
        """Serve the previous stable revision again (instantly if it is still kept running),
        then drain and stop the current one; the registry's champion follows."""
        with rollout_lock(self.settings):
            self._settle_unfinished()
            began = time.monotonic()
            state = read_state(self.settings)
            current, target = self._serving(state), state.previous
            if current is None:  # checked before anything starts: an empty home stays empty
                raise NothingToServeError(
                    "nothing to roll back: nothing serves (start with `evergreen serve`)"
                )
            if target is None:
                raise NothingToServeError(
                    f"nothing to roll back to: no revision of another model than "
                    f"{current.model_version} served before"
                )
            self.supervisor.ensure_router()
            previous = state.revisions[target]
            # It comes back where it ran (a container revision as containers), whatever
            # target this controller starts new revisions on, with as many replicas as serve
            # now: a single replica is a single point of failure.
            where = self.supervisor.target_of(previous)
            spec = previous.spec.with_replicas(max(previous.spec.replicas, current.spec.replicas))
            kept = previous.phase == READY
            name = target if kept else self.supervisor.reserve_name()
            config = {"strategy": "rollback", "replicas": spec.replicas}
            rollout_id = self._open("rollback", name, spec, current, config, reason, where.name)
            run = _Run(self, rollout_id, name, current.name, self.settings.seed)
            if kept:
                with mutate_state(self.settings) as state:
                    state.revisions[target].retire_at = None
                run.record("ready", detail=f"{target} still running (kept): instant")
            else:
                self.supervisor.launch(spec, name, where)
                run.record(
                    "started",
                    detail=f"{target} was stopped: restarting it as {name} ({where.name})",
                )
                ready_s = self.supervisor.wait_ready(run.new)
                run.record("ready", detail=f"ready in {ready_s:.1f} s")
            run.shift(100)
            run.switched()
            with mutate_state(self.settings) as state:
                index = state.previous_index()
                state.lineage = [*state.lineage[: index if index is not None else -2], run.new]
                state.stable = run.new
            drained = self.supervisor.drain_and_stop(current.name, 0.5, f"rolled back: {reason}")
            run.record("previous_stopped", detail=f"{current.name} drained in {drained:.1f} s")
            detail = self._promote_in_registry(previous.spec, reason)
            run.record(COMPLETED, detail=f"{run.new} serves {previous.model_version}. {detail}")
            return self._result(rollout_id, began, detail)

    def _promote_in_registry(self, spec: RevisionSpec, reason: str) -> str:
        if not spec.model_tag:
            return "No registered model: the registry is unchanged."
        from evergreen.models.registry import ModelRegistry, ModelStatus

        registry = ModelRegistry(self.settings)
        champion = registry.champion()
        if champion is not None and champion.tag == spec.model_tag:
            return f"{spec.model_tag} already is the champion."
        registry.set_status(spec.model_tag, ModelStatus.CHAMPION, self.actor, f"rollback: {reason}")
        return f"{spec.model_tag} is the champion again."

    # After a crash.

    def resume(self) -> list[RolloutResult]:
        """Settle every rollout a dead controller left open: complete or roll back."""
        with rollout_lock(self.settings):
            return self._settle_unfinished()

    def _settle_unfinished(self) -> list[RolloutResult]:
        with rollout_ledger(self.settings) as conn:
            open_rollouts = unfinished_rollouts(conn)
        return [self._settle(rollout) for rollout in open_rollouts]

    def _settle(self, rollout: Rollout) -> RolloutResult:
        began = time.monotonic()
        state = read_state(self.settings)
        new = state.revisions.get(rollout.revision)
        old = rollout.from_revision
        last = rollout.steps[-1].phase if rollout.steps else "nothing"
        run = _Run(self, rollout.id, new.name if new else None, old, self.settings.seed)
        took_over = rollout.phases and rollout.phases[-1] in (
            "switched",
            "previous_kept",
            "previous_stopped",
        )
        new_alive = new is not None and new.phase == READY and self._any_alive(new)
        if new_alive and (took_over or old is None):
            keep = float(rollout.config.get("keep_previous_s", 0.0)) if took_over else 0.0
            if old is None:
                run.shift(100)
            self._complete(run, keep, float(rollout.config.get("drain_s", 1.0)))
            detail = f"resumed: the controller had died after '{last}'; completed"
        elif old is not None:
            if new is not None and new.phase not in (STOPPED, REVISION_FAILED):
                self._roll_back(run, f"the controller died during '{last}'")
            else:
                self.supervisor.revive(old)
                self.supervisor.set_weights({old: 100}, f"resume {rollout.id}", rollout.id)
                run.record(ROLLED_BACK, "failed", f"the controller died during '{last}'")
            detail = f"rolled back: the controller had died during '{last}'"
        else:
            if new is not None and new.phase not in (STOPPED, REVISION_FAILED):
                self.supervisor.stop_revision(new.name, "abandoned start", REVISION_FAILED)
            run.record(FAILED, "failed", f"the controller died during '{last}'")
            detail = "failed: the first revision never served"
        return self._result(rollout.id, began, detail)

    def _any_alive(self, revision: RevisionState) -> bool:
        target = self.supervisor.target_of(revision)
        return any(target.is_alive(r) for r in revision.replicas)

    # Serving from nothing.

    def serve(
        self,
        spec: RevisionSpec | None = None,
        reason: str = "evergreen serve",
        replicas: int | None = None,
    ) -> str:
        """Start the router and, if nothing serves, the given revision or the champion's
        (idempotent; ``replicas`` for the champion's); start the watchdog. Returns what it
        did."""
        state = read_state(self.settings)
        if self._serving(state) is None and spec is None:
            spec = self._champion_spec() or self._last_stable_spec(state)  # or say why not
            spec = spec.with_replicas(replicas) if replicas else spec
        self.supervisor.ensure_router()
        with rollout_lock(self.settings):
            settled = self._settle_unfinished()
            state = read_state(self.settings)
            serving = self._serving(state)
            if serving is not None:
                self.supervisor.revive(serving.name)
                done = f"{serving.name} ({serving.model_version}) already serves"
            else:
                spec = spec or self._champion_spec() or self._last_stable_spec(state)
                result = self._deploy(spec, BlueGreen(keep_previous_s=0), reason)
                done = f"started {result.rollout.revision} ({spec.model_version})"
            if settled:
                done += f"; settled {len(settled)} unfinished rollout(s)"
        self.supervisor.ensure_watchdog()
        return done

    def _champion_spec(self) -> RevisionSpec | None:
        from evergreen.models.registry import ModelRegistry
        from evergreen.rollout.revisions import resolve_revision

        champion = ModelRegistry(self.settings).champion()
        return resolve_revision(self.settings, champion.tag) if champion else None

    def _last_stable_spec(self, state) -> RevisionSpec:
        if state.stable and state.stable in state.revisions:
            return state.revisions[state.stable].spec
        raise NothingToServeError(
            "nothing to serve: no champion in the ledger (train and promote a model first) "
            "and no revision served before; or name one: `evergreen deploy MODEL_OR_BENTO`"
        )

    def stop(self) -> list[str]:
        """Stop everything (``evergreen stop``); refuses while a rollout runs."""
        with rollout_lock(self.settings):
            return self.supervisor.stop_all()


def _utc(epoch_s: float):
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch_s, dt.UTC)
