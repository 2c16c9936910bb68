"""`evergreen observe` (Prometheus, Alertmanager and the alert receiver, until Ctrl-C) and
`evergreen alerts` (what fired, to whom, and whether it is still open)."""

from __future__ import annotations

import json
import signal
import time

import typer
from rich.console import Console
from rich.table import Table

from evergreen.settings import get_settings

console = Console()


def register(app: typer.Typer) -> None:
    """Add the commands to the ``evergreen`` app."""
    app.command("observe")(observe_command)
    app.command("alerts")(alerts_command)


def observe_command(
    prometheus_port: int = typer.Option(0, min=0, help="Prometheus's port (0: a free one)."),
    alertmanager_port: int = typer.Option(0, min=0, help="Alertmanager's port (0: a free one)."),
) -> None:
    """Watch serving and the loop: a real Prometheus scrapes every replica (the rollout keeps
    the target list), the router and the loop's state, evaluates the page and ticket alerts,
    and Alertmanager routes each to its owner; every alert lands in the ledger
    (`evergreen alerts`). Runs until Ctrl-C, which stops them all.
    """
    from evergreen.observe.stack import ObserveStack

    settings = get_settings().ensure_dirs()
    stack = ObserveStack(
        settings, prometheus_port=prometheus_port, alertmanager_port=alertmanager_port
    )
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with stack:
        console.print(f"Prometheus:   {stack.prometheus_url} (its alerts: /alerts)")
        console.print(f"Alertmanager: {stack.alertmanager_url}")
        console.print(f"Loop metrics: {stack.evergreen_url}/metrics")
        console.print(f"Rules and configuration: {stack.folder}")
        console.print("Ctrl-C stops them.")
        try:
            while not (dead := [n for n, p in stack.processes.items() if p.poll() is not None]):
                time.sleep(1)
        except KeyboardInterrupt:
            console.print("stopping Prometheus and Alertmanager")
            return
        for name in dead:
            console.print(f"[red]{name} exited[/]; its log ends:\n{stack.log_tail(name)}")
    raise typer.Exit(1)


def alerts_command(
    open_only: bool = typer.Option(False, "--open", help="Only alerts still firing."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    limit: int = typer.Option(50, min=1, help="Newest alert states shown."),
) -> None:
    """Every alert Alertmanager delivered: when it fired and resolved, its severity (page,
    ticket), the owner it was routed to (serving, model, data), and the runbook line."""
    from evergreen.observe.alerts import alert_history, still_firing

    history = alert_history(get_settings())
    rows = still_firing(history) if open_only else history[-limit:]
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    title = "Open alerts" if open_only else "Alerts (newest last)"
    table = Table(title=title)
    for column in ("since (UTC)", "status", "alert", "severity", "owner", "receiver", "summary"):
        table.add_column(column)
    for r in rows:
        at = (r.ends_at if r.status == "resolved" else r.starts_at) or r.received_at
        table.add_row(
            at[:19].replace("T", " "), r.status, r.alertname, r.severity, r.owner, r.receiver,
            f"{r.summary}\n[dim]{r.runbook}[/]",
        )  # fmt: skip
    empty = "No open alert." if open_only else "No alert recorded yet (`evergreen observe`)."
    console.print(table if rows else empty)
