"""`evergreen bento build|validate|containerize`: the serving bento from the shell.

The same functions the ``bento`` asset and its ``serves_like_offline`` check call; errors (no
champion, a corrupt artifact, a failed build or validation) print one plain line and exit 1.
"""

from __future__ import annotations

import shlex

import typer

from evergreen.settings import get_settings

bento_app = typer.Typer(help="Build, validate and containerize the fraud-detection bento.")


def register(app: typer.Typer) -> None:
    """Add ``evergreen bento ...`` to the ``evergreen`` app."""
    app.add_typer(bento_app, name="bento")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _model_tag(model: str | None) -> str:
    from evergreen.models.registry import ModelRegistry, UnknownModelError

    registry = ModelRegistry(get_settings())
    if model:
        try:
            return registry.resolve(model)
        except UnknownModelError as error:
            _fail(str(error))
    champion = registry.champion()
    if champion is None:
        _fail("no champion in the ledger: name a model with --model")
    return champion.tag


@bento_app.command("build")
def build_command(
    model: str = typer.Option(None, "--model", help="Model tag or version (default: champion)."),
) -> None:
    """Build fraud_detection:<model version> (verifies the model's sha256 first)."""
    from evergreen.models.registry import CorruptArtifactError
    from evergreen.serving.bento import BentoBuildError, build_bento

    try:
        built = build_bento(get_settings(), _model_tag(model))
    except (CorruptArtifactError, BentoBuildError) as error:
        _fail(str(error))
    state = "built" if built.rebuilt else "already built (same code)"
    typer.echo(f"{built.tag}: {state}; {built.size_bytes:,} bytes at {built.path}")


@bento_app.command("validate")
def validate_command(
    model: str = typer.Option(None, "--model", help="Model tag or version (default: champion)."),
    requests: int = typer.Option(None, "--requests", help="Transactions to replay."),
) -> None:
    """Serve the model's bento on a free loopback port and compare it with the model offline."""
    from evergreen.models.registry import CorruptArtifactError, ModelRegistry
    from evergreen.serving.bento import BENTO_NAME
    from evergreen.serving.validation import recent_transactions, validate_bento

    settings = get_settings()
    tag = _model_tag(model)
    try:
        loaded = ModelRegistry(settings).load(tag)
    except CorruptArtifactError as error:
        _fail(str(error))
    count = requests or settings.infra_validation_requests
    transactions, sample = recent_transactions(settings, count, settings.seed)
    version = tag.split(":", 1)[1]
    result = validate_bento(
        settings,
        f"{BENTO_NAME}:{version}",
        loaded,
        transactions,
        budget_ms=settings.serve_p99_budget_ms,
        work_dir=settings.reports_dir / "infra_validation" / version / "cli",
        sample=sample,
    )
    typer.echo(result.markdown())
    if not result.passed:
        raise typer.Exit(1)


@bento_app.command("containerize")
def containerize_command(
    model: str = typer.Option(None, "--model", help="Model tag or version (default: champion)."),
    backend: str = typer.Option(
        None, "--backend", help="docker or podman (default: EVERGREEN_CONTAINER_ENGINE, podman)."
    ),
    opt: list[str] = typer.Option([], "--opt", help="Backend option, e.g. network=host."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Build even if the image exists."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the command only."),
) -> None:
    """`bentoml containerize` of the model's bento, tagged as the bento (needs an engine).

    With podman the build uses the host network and mounts EVERGREEN_CONTAINER_WHEELS_DIR
    read-only (`evergreen bento prepare` makes both inputs). An existing image is kept."""
    from evergreen.serving.bento import BENTO_NAME
    from evergreen.serving.containers import (
        ContainerSetupError,
        containerize,
        containerize_command,
    )

    settings = get_settings()
    tag = f"{BENTO_NAME}:{_model_tag(model).split(':', 1)[1]}"
    engine = backend or settings.container_engine
    typer.echo(" ".join(shlex.quote(c) for c in containerize_command(settings, tag, engine, opt)))
    if dry_run:
        return
    try:
        image = containerize(settings, tag, engine, opt, rebuild=rebuild)
    except ContainerSetupError as error:
        _fail(str(error))
    state = f"built in {image.seconds:.0f} s" if image.built else "already built"
    typer.echo(f"{image.tag}: {state}; {image.size_bytes / 1e9:.2f} GB")


@bento_app.command("prepare")
def prepare_command(
    engine: str = typer.Option("podman", "--engine", help="The container engine."),
) -> None:
    """Make the container build's inputs on a machine without Docker Hub: a local python3.11
    base image (debootstrap) and the serving wheels, each cached by its inputs; prints the
    settings that make `evergreen bento build` use them (containers.md)."""
    from evergreen.serving.containers import ContainerSetupError, prepare

    try:
        settings = prepare(engine)
    except ContainerSetupError as error:
        _fail(str(error))
    for key, value in settings.items():
        typer.echo(f"export {key}={shlex.quote(value)}")
