"""The ``evergreen`` command line."""

from __future__ import annotations

import datetime as dt
import json
import sys

import typer
from rich.console import Console
from rich.table import Table

from evergreen.settings import get_settings

app = typer.Typer(
    help="Evergreen: continuous training from fresh data to a served model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
quarantine_app = typer.Typer(help="Inspect files set aside by the data-quality checks.")
app.add_typer(quarantine_app, name="quarantine")
console = Console()


def _register_simulate() -> None:
    from evergreen.simulator.cli import simulate_command

    app.command("simulate")(simulate_command)


_register_simulate()


@app.command()
def version() -> None:
    """Print Evergreen's version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("evergreen-ml"))


def _parse_day(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date like 2018-04-01", param_hint=option
        ) from None


@app.command()
def ingest(
    start: str = typer.Option(..., "--from", help="First day to ingest (YYYY-MM-DD)."),
    end: str = typer.Option(None, "--to", help="Last day to ingest, inclusive (default: --from)."),
    feed: list[str] = typer.Option(
        ["transactions", "labels"], "--feed", help="Feed(s) to ingest: transactions, labels."
    ),
) -> None:
    """Materialize raw partitions (validate, load, quarantine) for a range of days."""
    from assets.raw_data import raw_labels, raw_transactions
    from evergreen.runs import materialize_partitions

    first = _parse_day(start, "--from")
    last = _parse_day(end, "--to") if end else first
    if last < first:
        raise typer.BadParameter("--to is before --from", param_hint="--to")
    by_feed = {"transactions": raw_transactions, "labels": raw_labels}
    unknown = [f for f in feed if f not in by_feed]
    if unknown:
        raise typer.BadParameter(
            f"unknown feed {unknown[0]!r}; use transactions or labels", param_hint="--feed"
        )
    keys = [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    outcomes = materialize_partitions([by_feed[f] for f in feed], keys, get_settings())
    failed = [o for o in outcomes if o.failed_checks]
    for o in outcomes:
        mark = "[green]ok[/]" if not o.failed_checks else "[red]checks failed[/]"
        console.print(
            f"{o.asset} {o.partition}: {o.metadata.get('dagster/row_count', 0):,} rows {mark}"
        )
        for check, why in o.failed_checks.items():
            console.print(f"    {check}: {why}")
    raise typer.Exit(1 if failed else 0)


@quarantine_app.command("list")
def quarantine_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List quarantined files with their reasons."""
    from evergreen.ingest.quarantine import REASON_SUFFIX

    root = get_settings().quarantine_dir
    rows = []
    for reason_file in sorted(root.glob(f"*/date=*/*{REASON_SUFFIX}")):
        reason = json.loads(reason_file.read_text())
        feed, day = reason_file.parent.parent.name, reason_file.parent.name.removeprefix("date=")
        rows.append(
            {
                "feed": feed,
                "date": day,
                "file": reason.get("file"),
                "rows": reason.get("rows"),
                "reason": reason.get("message"),
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"Quarantine ({root})")
    for col in ("feed", "date", "file", "rows", "reason"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["feed"], r["date"], r["file"], f"{r['rows']:,}", r["reason"])
    console.print(table if rows else "Quarantine is empty.")


@app.command()
def demo(days: int = typer.Option(60, min=14, help="Days of history to simulate.")) -> None:
    """Run the main job end to end on the embedded defaults and print a summary."""
    from evergreen.demo import run_demo

    raise typer.Exit(run_demo(get_settings(), days=days, console=console))


@app.command()
def ui(
    host: str = typer.Option("127.0.0.1", help="Address the webserver listens on."),
    port: int = typer.Option(3000, help="Port of the webserver."),
) -> None:
    """Start Dagster (webserver and daemon, sensors on) on Evergreen's instance."""
    import os
    from pathlib import Path

    from evergreen.instance import ensure_instance

    settings = get_settings().ensure_dirs()
    ensure_instance(settings)
    workspace = Path(__file__).resolve().parents[1] / "workspace.yaml"
    dagster = Path(sys.executable).with_name("dagster")
    os.execv(str(dagster), [str(dagster), "dev", "-w", str(workspace), "-h", host, "-p", str(port)])
