"""``make demo``: the main job end to end on the embedded defaults, headless, with a summary."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections import Counter

from dagster import DagsterInstance
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from evergreen.instance import ensure_instance
from evergreen.runs import PartitionOutcome, materialize_partitions
from evergreen.settings import EvergreenSettings

DEMO_MARKER = ".evergreen-demo"


def demo_config(settings: EvergreenSettings, days: int = 60):
    """The embedded defaults: a small bank, two months, two bad deliveries to show the checks."""
    from evergreen.simulator import BadData, SimulatorConfig

    start = settings.start_date
    return SimulatorConfig(
        customers=2000,
        terminals=4000,
        start=start,
        days=days,
        seed=settings.seed,
        label_delay_days=settings.label_delay_days,
        bad_data=[
            BadData(kind="repeated_file", date=start + dt.timedelta(days=days // 3)),
            BadData(kind="negative_amounts", date=start + dt.timedelta(days=2 * days // 3)),
        ],
    )


def reset_state(settings: EvergreenSettings) -> None:
    """Clear a previous demo's data; refuse to touch a landing zone the demo did not make."""
    landing = settings.landing_dir
    if landing.exists() and any(landing.iterdir()) and not (settings.home / DEMO_MARKER).exists():
        raise SystemExit(
            f"{landing} holds data the demo did not create; set EVERGREEN_HOME to an "
            "empty folder to run the demo."
        )
    for path in (landing, settings.quarantine_dir, settings.warehouse_path.parent):
        shutil.rmtree(path, ignore_errors=True)
    settings.ensure_dirs()
    (settings.home / DEMO_MARKER).write_text("made by `evergreen demo`\n")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _ingest(
    settings: EvergreenSettings, keys: list[str], console: Console, instance
) -> list[PartitionOutcome]:
    from assets.raw_data import raw_labels, raw_transactions

    with _progress(console) as progress:
        task = progress.add_task("Ingesting daily partitions", total=2 * len(keys))
        return materialize_partitions(
            [raw_transactions, raw_labels],
            keys,
            settings,
            instance=instance,
            on_outcome=lambda _: progress.advance(task),
        )


def _features(
    settings: EvergreenSettings, keys: list[str], console: Console, instance
) -> list[PartitionOutcome]:
    """Feature tables for every day, then Feast apply, the newest day online, one training set."""
    from assets.feature_store import feature_definitions, online_features, training_set
    from assets.features import customer_spending_features, terminal_risk_features

    tables = [customer_spending_features, terminal_risk_features]
    with _progress(console) as progress:
        task = progress.add_task("Computing feature tables", total=len(tables) * len(keys) + 3)
        advance = lambda _: progress.advance(task)  # noqa: E731
        run = lambda assets, parts: materialize_partitions(  # noqa: E731
            assets, parts, settings, instance=instance, on_outcome=advance
        )
        return (
            run(tables, keys)
            + run([feature_definitions], [None])
            + run([online_features, training_set], [keys[-1]])
        )


def features_table(outcomes: list[PartitionOutcome]) -> Table:
    """What the feature layer produced: per asset, its last run and whether all its runs passed."""
    last = {o.asset: o for o in outcomes}
    ok = {name: all(o.success for o in outcomes if o.asset == name) for name in last}
    table = Table(title="Features")
    for col in ("asset", "ok", "rows", "detail"):
        table.add_column(col)
    details = {
        "feature_definitions": lambda m: f"version {m.get('definitions_version', '?')}",
        "training_set": lambda m: (
            f"window {m.get('window', '?')}, label share "
            f"{m.get('label_share', 0):.2%}, fingerprint {m.get('fingerprint', '?')}"
        ),
    }
    for name, o in last.items():
        detail = details.get(name, lambda m: "")(o.metadata)
        rows = o.metadata.get("dagster/row_count", "")
        table.add_row(name, "yes" if ok[name] else "NO", f"{rows:,}" if rows != "" else "", detail)
    return table


def summary_table(outcomes: list[PartitionOutcome]) -> Table:
    """Per asset: partitions, rows loaded and quarantined, checks failed."""
    table = Table(title="Raw ingestion")
    for col in ("asset", "partitions", "rows loaded", "rows quarantined", "failed checks"):
        table.add_column(col, justify="right" if col != "asset" else "left")
    for asset in sorted({o.asset for o in outcomes}):
        mine = [o for o in outcomes if o.asset == asset]
        loaded = sum(o.metadata.get("dagster/row_count", 0) for o in mine)
        quarantined = sum(o.metadata.get("rows_quarantined", 0) for o in mine)
        failed = Counter(c for o in mine for c in o.failed_checks)
        failures = ", ".join(f"{c} x{n}" for c, n in sorted(failed.items())) or "none"
        table.add_row(asset, str(len(mine)), f"{loaded:,}", f"{quarantined:,}", failures)
    return table


def run_demo(settings: EvergreenSettings, days: int = 60, console: Console | None = None) -> int:
    """Simulate, ingest and check, build features and a training set; print what happened.

    Returns the process exit code."""
    from evergreen.simulator import simulate

    console = console or Console()
    began = time.monotonic()
    reset_state(settings)
    config = demo_config(settings, days)
    console.print(
        f"[bold]Simulating[/] {config.days} days, {config.customers:,} customers, "
        f"{config.terminals:,} terminals into {settings.landing_dir}"
    )
    simulate(config, settings.landing_dir)
    keys = [(config.start + dt.timedelta(days=i)).isoformat() for i in range(config.days)]
    ensure_instance(settings)
    with DagsterInstance.get() as instance:  # one instance for every run, as the UI will see it
        outcomes = _ingest(settings, keys, console, instance)
        features = _features(settings, keys, console, instance)
    console.print(summary_table(outcomes))
    console.print(features_table(features))
    for o in outcomes:
        for check, why in o.failed_checks.items():
            console.print(f"  [yellow]{o.asset} {o.partition} {check}[/]: {why}")
    reconciled = all(
        o.metadata.get("rows_landed", 0)
        == o.metadata.get("dagster/row_count", 0) + o.metadata.get("rows_quarantined", 0)
        for o in outcomes
    )
    console.print(
        f"Rows reconciled (landed = loaded + quarantined) in every partition: "
        f"{'yes' if reconciled else 'NO'}"
    )
    console.print(
        f"Done in {time.monotonic() - began:.0f} s. State: {settings.home}. "
        "See it in the UI: make ui"
    )
    return 0 if reconciled and all(o.success for o in features) else 1
