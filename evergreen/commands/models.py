"""`evergreen models`, `evergreen promote`, `evergreen reject`: the registry from the shell.

Promote and reject are manual overrides of the gate: each is recorded in the ledger with the OS
user as actor and the required reason. Errors (an unknown model, a corrupted artifact, a change
the registry refuses) are printed as one plain line and exit with status 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.table import Table

from evergreen.commands import command_actor
from evergreen.settings import get_settings

MODEL_NAME = "fraud_detector"  # evergreen.models.registry's, without importing it

console = Console()
REASON_HELP = "Why (recorded in the ledger with your user name)."


def register(app: typer.Typer) -> None:
    """Add the model commands to the ``evergreen`` app."""
    app.command("models")(models_command)
    app.command("promote")(promote_command)
    app.command("reject")(reject_command)


def _registry():
    from evergreen.models.registry import ModelRegistry

    return ModelRegistry(get_settings())


@contextmanager
def _plain_errors() -> Iterator[None]:
    from evergreen.models.registry import CorruptArtifactError, UnknownModelError

    try:
        yield
    except (UnknownModelError, CorruptArtifactError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None


def models_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    history: bool = typer.Option(False, "--history", help="Every status change, oldest first."),
) -> None:
    """List registered models and their status (or, with --history, every status change)."""
    registry = _registry()
    if history:
        rows = [
            {
                "at": e.at,
                "tag": e.tag,
                "status": e.status.value,
                "actor": e.actor,
                "reason": e.reason,
            }
            for e in registry.history()
        ]
        if not as_json:
            for row in rows:
                row["at"], row["version"] = _minute(row["at"]), row["tag"].split(":", 1)[1]
        _print(rows, as_json, "Model history", ["at", "version", "status", "actor", "reason"])
        return
    rows = [
        {
            "tag": r.tag,
            "status": r.status.value,
            "status_since": r.status_since,
            "created_at": r.created_at,
            "cutoff": r.cutoff,
            "training_window": r.training_window,
            "data_fingerprint": r.data_fingerprint,
            "sha256": r.sha256,
            "threshold": r.threshold,
            "validation": r.metrics.get("validation", {}),
        }
        for r in registry.records()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    shown = [
        {
            "version": row["tag"].split(":", 1)[1],
            "status": row["status"],
            "since": _minute(row["status_since"]),
            "cutoff": row["cutoff"],
            "val AP": _number(row["validation"].get("average_precision")),
            "val AUC": _number(row["validation"].get("roc_auc")),
            "threshold": _number(row["threshold"]),
        }
        for row in rows
    ]
    title = f"Models (tag = {MODEL_NAME}:version; ledger {get_settings().ledger_path})"
    _print(shown, False, title, list(shown[0]) if shown else [])


def promote_command(
    model: str = typer.Argument(..., help="Tag, version or unique version prefix."),
    reason: str = typer.Option(..., "--reason", help=REASON_HELP),
) -> None:
    """Make a model the champion (retires the current one); its artifact is verified first."""
    from evergreen.models.ledger import ModelStatus

    _override(model, reason, ModelStatus.CHAMPION, _describe_promotion)


def reject_command(
    model: str = typer.Argument(..., help="Tag, version or unique version prefix."),
    reason: str = typer.Option(..., "--reason", help=REASON_HELP),
) -> None:
    """Reject a model, so it is never promoted or served."""
    from evergreen.models.ledger import ModelStatus

    _override(model, reason, ModelStatus.REJECTED, lambda before, event: "")


def _override(model: str, reason: str, status, describe: Callable) -> None:
    if not reason.strip():
        raise typer.BadParameter("a reason is required", param_hint="--reason")
    registry = _registry()
    with _plain_errors():
        tag = registry.resolve(model)
        before = registry.champion()
        event = registry.set_status(tag, status, actor=command_actor(), reason=reason)
    typer.echo(f"{event.tag} is now {event.status.value} (by {event.actor}: {event.reason})")
    extra = describe(before, event)
    if extra:
        typer.echo(extra)


def _describe_promotion(before, event) -> str:
    if before is None or before.tag == event.tag:
        return ""
    return f"{before.tag} is retired"


def _minute(timestamp: str) -> str:
    return timestamp[:16].replace("T", " ")


def _number(value) -> str:
    return "" if value is None else f"{value:.4f}"


def _print(rows: list[dict], as_json: bool, title: str, columns: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("No models registered yet.")
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column, no_wrap=column in ("version", "tag", "status", "at"))
    for row in rows:
        table.add_row(*(str(row[c]) for c in columns))
    console.print(table)
