"""`evergreen retrains`: every retrain trigger, accepted or suppressed, and why."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from evergreen.settings import get_settings

console = Console()


def register(app: typer.Typer) -> None:
    """Add the command to the ``evergreen`` app."""
    app.command("retrains")(retrains_command)


def retrains_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    limit: int = typer.Option(30, min=1, help="Newest triggers shown."),
) -> None:
    """The retrain policy's record: each trigger (drift, performance, schedule, manual), its
    data day, severity, outcome (accepted, suppressed, rearmed) and the reason."""
    from evergreen.loop.retrain_policy import RetrainGovernor

    rows = RetrainGovernor(get_settings()).history()[-limit:]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title="Retrain triggers (newest last)")
    for column in ("data day", "kind", "severity", "outcome", "reason"):
        table.add_column(column)
    for r in rows:
        severity = "" if r["severity"] is None else f"{r['severity']:.3g}"
        table.add_row(r["data_time"][:10], r["kind"], severity, r["outcome"], r["reason"])
    console.print(table if rows else "No retrain trigger recorded yet.")
