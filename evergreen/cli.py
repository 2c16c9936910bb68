"""The ``evergreen`` command line."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from typer.core import TyperGroup

from evergreen.library_notes import silence_library_notes
from evergreen.settings import get_settings

# The commands in the order a person meets them; `evergreen --help` lists those registered.
WORKFLOW = [
    ("simulate", "simulated card transactions into the landing zone"),
    ("ingest", "check and load days; bad files go to quarantine"),
    ("quarantine", "what the checks set aside, and why"),
    ("demo", "the whole loop in one go: data, models, serving, drift, retrain, canary"),
    ("ui", "Dagster on http://127.0.0.1:3000 (assets, runs, checks) and the Evidently UI"),
    ("status", "what is served now, at which weights, since when"),
    ("models", "registered models and their status"),
    ("promote", "make a model the champion by hand"),
    ("reject", "keep a model from ever being served"),
    ("rollback", "serve the previous champion again"),
    ("history", "rollouts, or what served at a given time and why"),
    ("retrains", "every retrain trigger, accepted or suppressed, and why"),
    ("observe", "Prometheus and Alertmanager watching serving and the loop"),
    ("alerts", "what fired, routed to which owner, still open or resolved"),
]
UI_STOP_GRACE_S = float(os.environ.get("EVERGREEN_UI_STOP_GRACE_S", "20"))
DEBUG_ENV = "EVERGREEN_DEBUG"  # set to see a traceback instead of a one-line error
silence_library_notes()


def _workflow_epilog(registered: set[str]) -> str:
    steps = [
        f"  [bold]evergreen {name:<11}[/]{what}" for name, what in WORKFLOW if name in registered
    ]
    return "\n".join(
        [
            "[bold]In order of use:[/]",
            *steps,
            "",
            "State lives under EVERGREEN_HOME (default ./.evergreen); every setting is an",
            "EVERGREEN_* variable. `evergreen COMMAND --help` explains a command.",
        ]
    )


def _setting_name(loc: tuple, of_settings: bool) -> str:
    field = ".".join(map(str, loc))
    return f"EVERGREEN_{field.upper()}" if of_settings else field


def _plain(error: Exception) -> str:
    """One line a person can act on: bad settings, a missing file, an Evergreen error."""
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        of_settings = error.title == "EvergreenSettings"
        return "; ".join(
            f"{_setting_name(e['loc'], of_settings)}={e.get('input')!s}: {e['msg']}"
            for e in error.errors()
        )
    if isinstance(error, OSError) and error.filename:
        return f"{error.strerror or error}: {error.filename}"
    if type(error).__module__.split(".")[0] == "evergreen":
        return str(error)
    return f"{type(error).__name__}: {error} (set {DEBUG_ENV}=1 to see where it came from)"


class EvergreenGroup(TyperGroup):
    """The top-level command: a workflow epilog in --help, and errors as one plain line."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        order = {name: i for i, (name, _) in enumerate(WORKFLOW)}
        return sorted(super().list_commands(ctx), key=lambda name: order.get(name, len(order)))

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        self.epilog = _workflow_epilog(set(self.commands))
        super().format_help(ctx, formatter)

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):  # usage errors, --help, exits
            raise
        except Exception as error:
            if os.environ.get(DEBUG_ENV):
                raise
            typer.echo(f"error: {_plain(error)}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=EvergreenGroup,
    help="Evergreen keeps a fraud model fresh: simulated card transactions land daily, pass "
    "data-quality checks into a warehouse, become features (Feast) and CatBoost models, and "
    "the model that beats the champion is served behind a rolling deployment.",
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


def _register_models() -> None:
    from evergreen.commands.models import register

    register(app)


_register_models()


def _register_bento() -> None:
    from evergreen.commands.bento import register

    register(app)


_register_bento()


def _register_rollout() -> None:
    from evergreen.commands.rollout import register

    register(app)


_register_rollout()


def _register_retrains() -> None:
    from evergreen.commands.retrains import register

    register(app)


_register_retrains()


def _register_observe() -> None:
    from evergreen.commands.observe import register

    register(app)


_register_observe()


@app.command()
def version() -> None:
    """Print Evergreen's version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("evergreen-ml"))


@contextmanager
def progress_bar(total: int, what: str) -> Iterator[Callable[[], None]]:
    """A progress bar for long work (shown on a terminal only); yields "one more item done"."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(what, total=total)
        yield lambda: progress.advance(task)


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
    """Materialize raw partitions (validate, load, quarantine) for a range of days.

    Each day of each feed is one Dagster run on Evergreen's instance, so `evergreen ui` shows
    them afterwards. A file that fails a check moves to quarantine with its reason (see
    `evergreen quarantine list`); the command then exits with status 1.
    """
    first = _parse_day(start, "--from")
    last = _parse_day(end, "--to") if end else first
    if last < first:
        raise typer.BadParameter("--to is before --from", param_hint="--to")
    unknown = [f for f in feed if f not in ("transactions", "labels")]
    if unknown:
        raise typer.BadParameter(
            f"unknown feed {unknown[0]!r}; use transactions or labels", param_hint="--feed"
        )
    # Checked input first: loading the assets takes seconds.
    from evergreen.demo.code_location import assets_named
    from evergreen.runs import materialize_partitions

    raw = assets_named("raw_transactions", "raw_labels")
    by_feed = dict(zip(("transactions", "labels"), raw, strict=True))
    keys = [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    with progress_bar(len(keys) * len(feed), "ingesting") as advance:

        def report(o) -> None:
            mark = "[green]ok[/]"
            if o.failed_checks:
                mark = "[red]checks failed[/]"
            elif not o.success:
                why = f": {o.error}" if o.error else ""
                mark = f"[red]run failed[/]{why} (run {o.run_id} in `evergreen ui`)"
            rows = o.metadata.get("dagster/row_count", 0)
            console.print(f"{o.asset} {o.partition}: {rows:,} rows {mark}")
            for check, why in o.failed_checks.items():
                console.print(f"    {check}: {why}")
            advance()

        outcomes = materialize_partitions(
            [by_feed[f] for f in feed], keys, get_settings(), on_outcome=report
        )
    raise typer.Exit(1 if any(o.failed_checks or not o.success for o in outcomes) else 0)


@quarantine_app.command("list")
def quarantine_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List quarantined files with their reasons."""
    from evergreen.ingest.contracts import FEEDS
    from evergreen.ingest.landing import stray_files
    from evergreen.ingest.quarantine import REASON_SUFFIX

    settings = get_settings()
    root = settings.quarantine_dir
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
    for path in stray_files(settings.landing_dir, tuple(FEEDS)):
        rows.append(
            {
                "feed": path.relative_to(settings.landing_dir).parts[0],
                "date": "-",
                "file": str(path.relative_to(settings.landing_dir)),
                "rows": None,
                "reason": "in the landing zone outside a FEED/date=YYYY-MM-DD/ folder: "
                "never ingested (move it into its day's folder)",
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"Quarantine ({root}) and stray landed files")
    for col in ("feed", "date", "file", "rows", "reason"):
        table.add_column(col)
    for r in rows:
        rows = f"{r['rows']:,}" if isinstance(r["rows"], int) else "unknown"
        table.add_row(r["feed"], r["date"], r["file"], rows, r["reason"])
    console.print(table if rows else "Quarantine is empty.")


@app.command()
def demo(
    quick: bool = typer.Option(False, help="The shortened loop the end-to-end test runs."),
    scenario: str = typer.Option(
        "concept",
        help="The drift: concept (a new fraud pattern a frozen model misses), covariate "
        "(spending inflation), gradual (both, over two weeks), none.",
    ),
) -> None:
    """The whole loop on the embedded defaults: history, first model, live days with a drift,
    sensors, retrain, gate, canary; ends with a summary (serving is stopped at the end)."""
    import dataclasses

    from evergreen.demo.plan import DemoPlan
    from evergreen.demo.run import run_demo
    from evergreen.settings import settings_home
    from evergreen.simulator.scenarios import SCENARIOS

    if scenario not in SCENARIOS:
        raise typer.BadParameter(f"{scenario!r}: choose from {', '.join(SCENARIOS)}")
    plan = DemoPlan.quick() if quick else DemoPlan()
    plan = dataclasses.replace(plan, scenario=scenario)
    summary = run_demo(settings_home(), plan, console)
    raise typer.Exit(1 if summary.failed_requests else 0)


@app.command()
def ui(
    host: str = typer.Option("127.0.0.1", help="Address the webserver listens on."),
    port: int = typer.Option(3000, help="Port of the webserver."),
    evidently: bool = typer.Option(
        True, help="Also serve the Evidently UI workspace (drift and quality per day)."
    ),
    evidently_port: int = typer.Option(0, help="Port of the Evidently UI (0: a free one)."),
) -> None:
    """Start Dagster (webserver and daemon, sensors on) on Evergreen's instance, serve the
    reports folder so the metadata's links to Evidently reports and plots open, and the
    Evidently UI over this home's workspace (a project per model line: drift per feature and
    quality on matured labels per day, per segment; `model_monitoring` fills it).

    Open http://127.0.0.1:3000 to see every asset, materialize one by hand, and read each
    run's checks and metadata; reports are on http://127.0.0.1:3001 (EVERGREEN_REPORTS_PORT);
    the Evidently UI's address is printed at start. Ctrl-C stops everything.
    """
    import signal
    import subprocess
    from pathlib import Path

    from evergreen.dashboards.evidently_ui import EvidentlyUI
    from evergreen.instance import ensure_instance
    from evergreen.report_server import start_report_server, stop_report_server
    from evergreen.rollout.processes import stop_group

    settings = get_settings().ensure_dirs()
    ensure_instance(settings)
    reports = start_report_server(settings)
    console.print(f"Reports (Evidently HTML, plots): {settings.reports_url}")
    workspace = Path(__file__).resolve().parents[1] / "workspace.yaml"
    dagster = Path(sys.executable).with_name("dagster")
    argv = [str(dagster), "dev", "-w", str(workspace), "-h", host, "-p", str(port)]
    # Its own process group: Ctrl-C reaches this process only, which then ends the whole
    # group (dagster dev, webserver, daemon, code server, run workers) and waits for it. Left
    # to itself, dagster dev with a run in flight ignored SIGTERM for more than 8 minutes.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    code = 130
    dashboards = None
    try:
        if evidently:  # its imports take seconds: it starts while Dagster does
            dashboards = EvidentlyUI(settings, evidently_port or None).launch()
        webserver = subprocess.Popen(argv, start_new_session=True)
        try:
            if dashboards is not None:
                dashboards = _evidently_ready(dashboards)
            code = webserver.wait()
        except KeyboardInterrupt:
            console.print(f"stopping Dagster (up to {UI_STOP_GRACE_S:.0f} s, then killed)")
            killed = stop_group(webserver.pid, UI_STOP_GRACE_S)
            if killed:
                console.print(f"killed {len(killed)} process(es) that ignored SIGINT and SIGTERM")
            code = 0  # Ctrl-C is how this command is meant to end (make ui is not an error)
    except KeyboardInterrupt:  # Ctrl-C before Dagster started
        code = 0
    finally:
        if dashboards is not None:
            dashboards.stop()
        stop_report_server(reports)
    raise typer.Exit(code)


def _evidently_ready(dashboards):
    """The Evidently UI once it answers (its address printed), or None (said why) if it did
    not start: Dagster runs all the same, the dashboards are an extra."""
    from evergreen.dashboards.evidently_ui import EvidentlyUIError

    try:
        dashboards.wait_ready()
    except EvidentlyUIError as error:
        console.print(f"[yellow]Evidently UI not started[/]: {error}")
        return None
    console.print(f"Evidently UI (drift and quality per day): {dashboards.url}")
    return dashboards


@app.command()
def worker(
    name: str = typer.Option(
        "", help="The worker's Celery name (default: evergreen@HOSTNAME); unique per worker."
    ),
    concurrency: int = typer.Option(1, min=1, help="Steps this worker runs at once."),
) -> None:
    """Run a Celery worker of the cluster profile (EVERGREEN_PROFILE=cluster): it takes the
    steps of Dagster runs from Redis and executes them on this host, the runs' events going to
    the instance on PostgreSQL. Start one or more per worker host; Ctrl-C stops it."""
    from evergreen.workers import worker_command

    settings = get_settings()
    if not settings.is_cluster:
        raise typer.BadParameter(
            "runs go to Celery workers on the cluster profile only (EVERGREEN_PROFILE=cluster, "
            "with EVERGREEN_POSTGRES_URL and EVERGREEN_REDIS_URL)"
        )
    command = worker_command(name or None, concurrency)
    os.execv(command[0], command)  # celery takes over this process (signals, exit code)
