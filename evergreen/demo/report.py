"""The demo's closing summary: models, rollouts, retrain triggers, AP by period, failed requests."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from rich.console import Console
from rich.table import Table

from evergreen.demo.scorecard import Period, score_periods


def collect(run) -> None:
    """Fill ``run.summary_data`` from the ledger, the retrain record and the warehouse."""
    from evergreen.loop.retrain_policy import RetrainGovernor
    from evergreen.models.registry import ModelRegistry
    from evergreen.rollout.records import list_rollouts, rollout_ledger

    summary, settings = run.summary_data, run.settings
    registry = ModelRegistry(settings)
    summary.statuses = dict(Counter(e.status.value for e in registry.history()))
    summary.statuses["trained"] = len(registry.records())
    with rollout_ledger(settings) as conn:
        summary.rollouts = dict(Counter(r.status for r in list_rollouts(conn, limit=1000)))
    summary.triggers = dict(
        Counter(f"{t['kind']} {t['outcome']}" for t in RetrainGovernor(settings).history())
    )
    summary.scores = score_periods(settings, _periods(run), summary.frozen_model)
    _recovery(run)


def _recovery(run) -> None:
    """AP per live day served / frozen / oracle, the recovery days, and the plot of it."""
    from evergreen.loop.recovery import daily_recovery, loop_events, plot_recovery, recovery_days

    summary, settings = run.summary_data, run.settings
    first = run.world.day(run.plan.history_days)
    last = run.world.day(run.plan.history_days + run.plan.live_days - 1)
    summary.scenario = run.plan.scenario
    summary.daily = daily_recovery(settings, first, last, summary.frozen_model)
    summary.recovery_days = recovery_days(summary.daily, run.drift_day)
    summary.recovery_plot = plot_recovery(
        summary.daily,
        loop_events(settings),
        run.drift_day,
        settings.reports_dir / "monitoring" / "recovery.png",
    )


def _periods(run) -> list[Period]:
    """Before the drift; the drift served by the frozen model; the drift after a retrain served."""
    from evergreen.loop.live_data import served_days
    from evergreen.warehouse import warehouse

    first = run.world.day(run.plan.history_days)
    last = run.world.day(run.plan.history_days + run.plan.live_days - 1)
    with warehouse(run.settings, read_only=True) as conn:
        frozen_days = set(served_days(conn, run.summary_data.frozen_model))
    drift = run.drift_day
    retrained = [
        first + dt.timedelta(days=i)
        for i in range((last - first).days + 1)
        if first + dt.timedelta(days=i) >= drift and first + dt.timedelta(days=i) not in frozen_days
    ]
    periods = [Period("before the drift", first, drift - dt.timedelta(days=1))]
    if retrained:
        periods.append(
            Period("drift, before a retrain served", drift, retrained[0] - dt.timedelta(days=1))
        )
        periods.append(Period("drift, after the retrain", retrained[0], last))
    else:
        periods.append(Period("drift (no retrained model served)", drift, last))
    return [p for p in periods if p.first_day <= p.last_day]


def print_summary(summary, console: Console) -> None:
    """The closing tables."""
    models = Table(title="Models and rollouts")
    models.add_column("what")
    models.add_column("count", justify="right")
    for key, value in sorted(summary.statuses.items()):
        models.add_row(f"models {key}", str(value))
    for key, value in sorted(summary.rollouts.items()):
        models.add_row(f"rollouts {key}", str(value))
    for key, value in sorted(summary.triggers.items()):
        models.add_row(f"retrain triggers: {key}", str(value))
    models.add_row("requests through the router", f"{summary.requests:,}")
    models.add_row("failed requests", str(len(summary.failed_requests)))
    models.add_row("torn answers sent again", str(summary.torn_retries))
    console.print(models)
    console.print(_ap_table(summary))
    recovered = (
        "not within the live days"
        if summary.recovery_days is None
        else f"{summary.recovery_days} day(s) after the drift began"
    )
    console.print(
        f"Scenario {summary.scenario or '-'}: served AP at or above 90 % of the oracle's from "
        f"then on: {recovered}."
    )
    for failure in summary.failed_requests[:10]:
        console.print(f"[red]failed:[/] {failure}")


def _ap_table(summary) -> Table:
    table = Table(
        title=f"Average precision, served vs frozen at the start ({summary.frozen_model}) "
        "vs an oracle retrained daily on all labels known"
    )
    for column in (
        "period",
        "days",
        "transactions",
        "frauds",
        "served AP",
        "frozen AP",
        "oracle AP",
        "served by",
    ):
        table.add_column(column)
    for score in summary.scores:
        period = score.period
        table.add_row(
            period.name,
            f"{period.first_day}..{period.last_day}",
            f"{score.transactions:,}",
            str(score.frauds),
            _fmt(score.served_ap),
            _fmt(score.frozen_ap),
            _fmt(score.oracle_ap),
            score.served_models,
        )
    return table


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_alerts(settings, console: Console) -> list[tuple]:
    """The alerts Alertmanager delivered during the demo, one row each: name, severity, the
    receiver its route chose, when it fired and resolved (UTC). Returns the rows."""
    from evergreen.observe.alerts import alert_history

    alerts: dict[tuple[str, str], list] = {}
    for row in alert_history(settings):
        key = (row.fingerprint, row.starts_at)
        entry = alerts.setdefault(key, [row.alertname, row.severity, row.receiver, "", ""])
        entry[3 if row.status == "firing" else 4] = (row.ends_at or row.starts_at)[11:19]
    rows = [tuple(entry) for entry in alerts.values()]
    if not rows:
        console.print("Alerts raised: none.")
        return rows
    table = Table(title="Alerts raised (routed by severity and owner; `evergreen alerts`)")
    for column in ("alert", "severity", "routed to", "fired", "resolved"):
        table.add_column(column)
    for entry in rows:
        table.add_row(*entry[:4], entry[4] or "still firing")
    console.print(table)
    return rows
