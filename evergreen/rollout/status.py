"""What serves now (``evergreen status``) and what served at a time, and why (``evergreen
history --at``), as plain dictionaries the CLI prints as tables or JSON."""

from __future__ import annotations

import datetime as dt
from typing import Any

from evergreen.rollout.processes import is_alive
from evergreen.rollout.records import (
    get_rollout,
    rollout_ledger,
    routing_at,
    timestamp,
    unfinished_rollouts,
    weight_since,
)
from evergreen.rollout.state import read_state
from evergreen.rollout.targets import target_named
from evergreen.settings import EvergreenSettings


def serving_status(settings: EvergreenSettings) -> dict[str, Any]:
    """The router, the watchdog and every live revision: weight, since when, replicas."""
    state = read_state(settings)
    with rollout_ledger(settings) as conn:
        open_rollouts = [r.id for r in unfinished_rollouts(conn)]
        revisions = []
        for revision in state.live():
            target = target_named(revision.target)
            since = weight_since(conn, revision.name, revision.weight) or revision.weight_since
            revisions.append(
                {
                    "revision": revision.name,
                    "model_version": revision.model_version,
                    "source": revision.spec.source,
                    "target": revision.target,
                    "weight": revision.weight,
                    "since": since,
                    "phase": revision.phase,
                    "role": _role(state, revision.name),
                    "retire_at": revision.retire_at,
                    "replicas": [
                        {
                            "index": r.index,
                            "port": r.port,
                            "pid": r.process.pid if r.process else None,
                            "container": r.container,
                            "alive": target.is_alive(r),
                            "ready": r.ready,
                            "restarts": r.restarts,
                        }
                        for r in revision.replicas
                    ],
                }
            )
    return {
        "serving_url": f"http://{state.edge.listen}" if state.edge else None,
        "router_running": bool(state.router and is_alive(state.router.process)),
        "edge_running": bool(state.edge and is_alive(state.edge.process)),
        "watchdog_running": is_alive(state.watchdog),
        "stable": state.stable,
        "previous": state.previous,
        "unfinished_rollouts": open_rollouts,
        "revisions": revisions,
    }


def _role(state, name: str) -> str:
    if name == state.stable:
        return "stable"
    if name == state.previous:
        return "previous (kept for rollback)"
    return "new"


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 time (naive means UTC), or ``now``."""
    if text.strip().lower() == "now":
        return dt.datetime.now(dt.UTC)
    moment = dt.datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def served_at(settings: EvergreenSettings, moment: dt.datetime) -> dict[str, Any]:
    """What the router served at ``moment`` and why: the routing change in force and the
    rollout (or command) that made it."""
    at = timestamp(moment)
    with rollout_ledger(settings) as conn:
        change = routing_at(conn, at)
        rollout = get_rollout(conn, change.rollout_id) if change and change.rollout_id else None
    if change is None:
        return {"at": at, "serving": [], "why": "nothing had been served yet"}
    serving = [
        {"revision": name, "weight": weight, "model_version": change.models.get(name)}
        for name, weight in sorted(change.weights.items(), key=lambda kv: -kv[1])
        if weight > 0
    ]
    answer: dict[str, Any] = {
        "at": at,
        "since": change.at,
        "serving": serving,
        "cause": change.cause,
        "why": change.cause if not serving else "",
    }
    if rollout is not None:
        step = next((s for s in reversed(rollout.steps) if s.at <= at), None)
        answer["rollout"] = {
            "id": rollout.id,
            "kind": rollout.kind,
            "status_now": rollout.status,
            "revision": rollout.revision,
            "model_version": rollout.model_version,
            "source": rollout.source,
            "from_revision": rollout.from_revision,
            "actor": rollout.actor,
            "reason": rollout.reason,
            "step_then": f"{step.phase}: {step.detail}" if step else None,
        }
        answer["why"] = (
            f"{rollout.kind} rollout {rollout.id} by {rollout.actor}: {rollout.reason}"
            + (f" (then: {step.phase})" if step else "")
        )
    elif serving:
        answer["why"] = change.cause
    return answer
