"""What serves now (``evergreen status``) and what served at a time, and why (``evergreen
history --at``), as plain dictionaries the CLI prints as tables or JSON.

Two clocks answer "what served at T": the wall clock (``served_at``: the routing in force at
that instant, from the ledger's ``routing_changes``) and the data's own time (``scored_on``:
which models scored the transactions of data day T, from the prediction log, and which rollout
routed each of them). A demo or a replay serves weeks of data days within an hour of wall
clock, so a data day asked on the wall clock finds nothing, and the other way round."""

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
    from evergreen.rollout.supervisor import Supervisor

    return {
        "serving_url": f"http://{state.edge.listen}" if state.edge else None,
        "router_running": bool(state.router and is_alive(state.router.process)),
        "edge_running": bool(state.edge and is_alive(state.edge.process)),
        "watchdog_running": is_alive(state.watchdog),
        "stable": state.stable,
        "previous": state.previous,
        "unfinished_rollouts": open_rollouts,
        # A config changed through an admin socket, which the watchdog has not restored yet.
        "drift": Supervisor(settings).drift(),
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
        return {"at": at, "clock": "wall", "serving": [], "why": _nothing_yet(settings)}
    serving = [
        {"revision": name, "weight": weight, "model_version": change.models.get(name)}
        for name, weight in sorted(change.weights.items(), key=lambda kv: -kv[1])
        if weight > 0
    ]
    answer: dict[str, Any] = {
        "at": at,
        "clock": "wall",
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


def _nothing_yet(settings: EvergreenSettings) -> str:
    """Why nothing served at a wall-clock time before the first routing change."""
    with rollout_ledger(settings) as conn:
        first = conn.execute("SELECT min(at) FROM routing_changes").fetchone()[0]
    if first is None:
        return "nothing had been served yet: the router has never routed in this home"
    return f"nothing had been served yet on the wall clock: the first routing change is at {first}"


def scored_on(settings: EvergreenSettings, day: dt.date) -> dict[str, Any]:
    """What scored the transactions of data day ``day`` (the transactions' own time, which the
    daily partitions, the demo and the monitoring keep), and why: per model version, from the
    prediction log, how many transactions, their share, when (wall clock) they were scored,
    the revision and the rollout that routed that model then."""
    import duckdb

    from evergreen.serving.live_schema import LOG_COLUMNS
    from evergreen.serving.prediction_log import LOG_GLOB, day_dir

    answer: dict[str, Any] = {"day": day.isoformat(), "clock": "data", "transactions": 0}
    files = sorted(day_dir(settings.predictions_dir, day).glob(LOG_GLOB))
    if not files:
        logged = sorted(
            p.name.removeprefix("date=") for p in settings.predictions_dir.glob("date=*")
        )
        held = f"it holds {logged[0]} to {logged[-1]}" if logged else "it is empty"
        why = f"no transaction of data day {day} was scored (the prediction log: {held})"
        return {**answer, "scored": [], "why": why}
    columns = {c: LOG_COLUMNS[c] for c in ("model_version", "tx_datetime", "predicted_at")}
    with duckdb.connect() as conn:
        rows = conn.execute(
            "SELECT model_version, count(*), min(tx_datetime), max(tx_datetime), "
            "min(predicted_at), max(predicted_at) FROM read_json($files, format = "
            "'newline_delimited', columns = $columns, ignore_errors = true) "
            "WHERE model_version IS NOT NULL AND tx_datetime IS NOT NULL AND predicted_at IS "
            "NOT NULL GROUP BY 1 ORDER BY 5, 1",
            {"files": [str(f) for f in files], "columns": columns},
        ).fetchall()
    total = sum(r[1] for r in rows)
    scored = []
    for model, count, first_tx, last_tx, first_at, last_at in rows:
        origin = _routed_by(settings, model, first_at.replace(tzinfo=dt.UTC))
        scored.append(
            {
                "model_version": model,
                "transactions": count,
                "share": count / total,
                "first_transaction": first_tx.isoformat(),
                "last_transaction": last_tx.isoformat(),
                "scored_from": timestamp(first_at),
                "scored_to": timestamp(last_at),
                **origin,
            }
        )
    return {**answer, "transactions": total, "scored": scored, "why": ""}


def _routed_by(settings: EvergreenSettings, model: str, moment: dt.datetime) -> dict[str, Any]:
    """The revision of ``model`` the router sent traffic to at ``moment`` and why."""
    then = served_at(settings, moment)
    revision = next((s["revision"] for s in then["serving"] if s["model_version"] == model), None)
    if revision is not None:
        return {"revision": revision, "why": then["why"]}
    rollout = then.get("rollout") or {}
    if rollout.get("model_version") == model:  # warm-up or analysis requests at weight 0
        why = f"{then['why']}; sent to the new revision directly (warm-up or analysis)"
        return {"revision": rollout["revision"], "why": why}
    return {"revision": None, "why": f"not routed by the router at {then['at']}: {then['why']}"}
