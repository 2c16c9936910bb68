"""``evergreen simulate``: write (or extend) a simulated landing zone.

Register with ``app.command("simulate")(simulate_command)``; ``simulate_app`` runs it alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from evergreen.settings import get_settings
from evergreen.simulator.config import BadData, BadDataKind, SimulatorConfig
from evergreen.simulator.landing import read_state
from evergreen.simulator.runner import SimulationSummary, append_days, simulate
from evergreen.simulator.scenarios import SCENARIOS, DriftScenario

KINDS = ", ".join(kind.value for kind in BadDataKind)


class _InputError(Exception):
    """Bad command-line input, reported in one line."""


def simulate_command(
    out: Annotated[
        Path | None,
        typer.Option(help="Landing zone.", show_default="the settings' landing_dir"),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(metavar="DATE", help="First day.", show_default="settings, 2018-04-01"),
    ] = None,
    days: Annotated[
        int | None,
        typer.Option(min=0, help="Days to generate.", show_default="183; 1 with --append"),
    ] = None,
    customers: Annotated[int | None, typer.Option(min=1, show_default="5000")] = None,
    terminals: Annotated[int | None, typer.Option(min=1, show_default="10000")] = None,
    seed: Annotated[int | None, typer.Option(min=0, show_default="settings, 0")] = None,
    label_delay: Annotated[
        int | None,
        typer.Option(min=0, help="Days until labels land.", show_default="settings, 7"),
    ] = None,
    concept_drift_start: Annotated[
        str | None, typer.Option(metavar="DATE", help="Start of the night-time fraud pattern.")
    ] = None,
    covariate_drift_start: Annotated[
        str | None, typer.Option(metavar="DATE", help="Start of inflation and the mobile shift.")
    ] = None,
    drift: Annotated[
        str | None,
        typer.Option(
            metavar="SCENARIO@DATE",
            help=f"A named drift scenario from DATE: {', '.join(SCENARIOS)} (see "
            "evergreen.simulator.scenarios).",
        ),
    ] = None,
    fraud_burn_in: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Days the fraud scenarios have run before the first day (28: start steady).",
            show_default="0, the handbook",
        ),
    ] = None,
    bad_data: Annotated[
        list[str] | None,
        typer.Option(metavar="KIND@DATE", help=f"Bad data, repeatable. Kinds: {KINDS}."),
    ] = None,
    append: Annotated[
        bool, typer.Option("--append", help="Append days to an existing landing zone.")
    ] = False,
) -> None:
    """Simulate card transactions (Fraud Detection Handbook) into the landing zone."""
    options = {
        "--start": start,
        "--customers": customers,
        "--terminals": terminals,
        "--seed": seed,
        "--label-delay": label_delay,
        "--concept-drift-start": concept_drift_start,
        "--covariate-drift-start": covariate_drift_start,
        "--drift": drift,
        "--fraud-burn-in": fraud_burn_in,
    }
    try:
        entries = [_bad_data(text) for text in bad_data or []]
        out = out or _default_out()
        if append:
            summary = _append(out, 1 if days is None else days, entries, options)
        else:
            cfg = _config(options, days, entries)
            summary = _run(lambda progress: simulate(cfg, out, progress), cfg.days)
    except (_InputError, FileExistsError, ValueError) as error:
        typer.echo(f"Error: {_one_line(error)}", err=True)
        raise typer.Exit(code=2) from None
    _print_summary(summary, out)


def _append(
    out: Path, days: int, entries: list[BadData], options: dict[str, object]
) -> SimulationSummary:
    """Append days to the zone at ``out``; options that would change its config are refused."""
    clashing = [name for name, value in options.items() if value is not None]
    if clashing:
        raise _InputError(f"{', '.join(clashing)} cannot change an existing simulation")
    try:
        read_state(out)
    except FileNotFoundError as error:
        raise _InputError(f"--append: {error}") from None
    return _run(lambda progress: append_days(out, days, entries, progress), days)


def _config(options: dict, days: int | None, bad_data: list[BadData]) -> SimulatorConfig:
    """The config from the options; unset options fall back to the settings, then the defaults."""
    settings = get_settings()
    start, seed, delay = options["--start"], options["--seed"], options["--label-delay"]
    fields = {
        "start": _date(start, "--start") if start else settings.start_date,
        "seed": settings.seed if seed is None else seed,
        "label_delay_days": settings.label_delay_days if delay is None else delay,
        "days": days,
        "customers": options["--customers"],
        "terminals": options["--terminals"],
        "concept_drift_start": _date(options["--concept-drift-start"], "--concept-drift-start"),
        "covariate_drift_start": _date(
            options["--covariate-drift-start"], "--covariate-drift-start"
        ),
        "fraud_burn_in_days": options["--fraud-burn-in"],
        "bad_data": tuple(bad_data),
        **_scenario(options["--drift"]),
    }
    try:
        return SimulatorConfig(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as error:
        raise _InputError(error.errors()[0]["msg"].removeprefix("Value error, ")) from None


def _scenario(text: str | None) -> dict[str, object]:
    """The config fields of ``--drift SCENARIO@DATE``."""
    if text is None:
        return {}
    name, sep, date = text.partition("@")
    if not sep or name not in SCENARIOS:
        raise _InputError(f"--drift: {text!r} is not SCENARIO@YYYY-MM-DD ({', '.join(SCENARIOS)})")
    return DriftScenario(name).fields(_date(date, "--drift"))


def _date(text: str | None, option: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise _InputError(f"{option}: {text!r} is not a date (YYYY-MM-DD)") from None


def _bad_data(text: str) -> BadData:
    kind, sep, date = text.partition("@")
    if not sep:
        raise _InputError(f"--bad-data: {text!r} is not KIND@YYYY-MM-DD")
    if kind not in {k.value for k in BadDataKind}:
        raise _InputError(f"--bad-data: unknown kind {kind!r}; choose from {KINDS}")
    return BadData(kind=BadDataKind(kind), date=_date(date, "--bad-data"))


def _default_out() -> Path:
    return get_settings().landing_dir


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _run(
    job: Callable[[Callable[[int], None]], SimulationSummary], total: int
) -> SimulationSummary:
    """Run ``job(progress_callback)`` under a progress bar."""
    columns = (TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("days", total=total)
        return job(lambda _day: progress.advance(task))


def _print_summary(summary: SimulationSummary, out: Path) -> None:
    table = Table(title=f"Simulated into {out}", show_header=False)
    table.add_row("days", f"{summary.days:,}")
    table.add_row("transactions", f"{summary.transactions:,}")
    table.add_row("frauds", f"{summary.frauds:,} ({summary.fraud_share:.2%})")
    for scenario, count in summary.frauds_by_scenario.items():
        name = " (concept drift)" if scenario == 4 else ""
        table.add_row(f"  scenario {scenario}{name}", f"{count:,}")
    table.add_row("files written", f"{summary.files:,}")
    Console().print(table)


simulate_app = typer.Typer(add_completion=False)
simulate_app.command()(simulate_command)
