"""`evergreen serve | status | deploy | helm-values | rollback | history | stop`, `evergreen
rollout resume`.

The serving side from the shell: start the router and the champion (``serve``), see what serves
at which weight since when (``status``), roll a model or bento out blue-green or canary
(``deploy``), write Helm values for Dagster's chart (``helm-values``), serve the previous
champion again (``rollback``), ask what served at a time and why (``history --at``), stop
everything (``stop``), and settle a rollout whose controller died (``rollout resume``). Every
action is recorded in the ledger with the OS user as actor.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from evergreen.commands import command_actor
from evergreen.settings import get_settings

console = Console()


def register(app: typer.Typer) -> None:
    """Add the serving and rollout commands to the ``evergreen`` app."""
    app.command("serve")(serve_command)
    app.command("status")(status_command)
    app.command("deploy")(deploy_command)
    app.command("helm-values")(helm_values_command)
    app.command("rollback")(rollback_command)
    app.command("history")(history_command)
    app.command("stop")(stop_command)
    rollout_app = typer.Typer(help="Rollouts in progress.", no_args_is_help=True)
    rollout_app.command("resume")(resume_command)
    app.add_typer(rollout_app, name="rollout")


def _controller(target=None):
    from evergreen.rollout.controller import RolloutController
    from evergreen.rollout.supervisor import Supervisor

    settings = get_settings().ensure_dirs()
    return RolloutController(settings, Supervisor(settings, target=target), actor=command_actor())


def _env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--env")
        env[key] = value
    return env


def _echo_json(data) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def serve_command(
    model_or_bento: str = typer.Argument(
        None, help="What to serve if nothing serves yet (default: the champion)."
    ),
    replicas: int = typer.Option(2, min=1, help="Replicas of the revision."),
    env: list[str] = typer.Option([], "--env", help="KEY=VALUE for the replicas (repeatable)."),
) -> None:
    """Start the router and, if nothing serves, the champion's revision; then return.

    Idempotent: when a revision already serves, only dead processes are restarted. A watchdog
    keeps replicas and the router alive afterwards, across Dagster runs and shells.
    """
    from evergreen.rollout.revisions import resolve_revision

    controller = _controller()
    spec = None
    if model_or_bento:
        spec = resolve_revision(controller.settings, model_or_bento, _env(env), replicas)
    done = controller.serve(spec, replicas=replicas)
    console.print(f"{done}; serving on {controller.supervisor.serving_url()}")


def status_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """What serves now: each revision's weight, since when, its replicas."""
    from evergreen.rollout.status import serving_status

    status = serving_status(get_settings())
    if as_json:
        _echo_json(status)
        return
    if not status["revisions"]:
        console.print("Nothing serves. Start with `evergreen serve`.")
        return
    table = Table(title=f"Serving on {status['serving_url']}")
    for column in ("revision", "model", "target", "weight", "since (UTC)", "role", "replicas"):
        table.add_column(column)
    for r in status["revisions"]:
        replicas = " ".join(
            f"{x['port']}{'(DEAD)' if not x['alive'] else '' if x['ready'] else '(starting)'}"
            for x in r["replicas"]
        )
        since = (r["since"] or "")[:19].replace("T", " ")
        table.add_row(
            r["revision"],
            r["model_version"],
            r["target"],
            f"{r['weight']}%",
            since,
            r["role"],
            replicas,
        )
    console.print(table)
    watchdog = "running" if status["watchdog_running"] else "NOT running (evergreen serve)"
    console.print(f"watchdog: {watchdog}")
    dead = [
        f"{r['revision']}/{x['index']}" for r in status["revisions"] for x in r["replicas"]
        if not x["alive"]
    ]  # fmt: skip
    if dead:
        who = (
            "the watchdog restarts them"
            if status["watchdog_running"]
            else (
                "nothing restarts them while the watchdog is down: `evergreen serve` restarts both"
            )
        )
        console.print(f"[red]dead replicas: {', '.join(dead)}[/] ({who})")
    for drift in status["drift"]:
        who = (
            "the watchdog restores it"
            if status["watchdog_running"]
            else "nothing restores it while the watchdog is down: `evergreen serve` starts it"
        )
        console.print(f"[red]drift: {drift}[/] ({who})")
    if status["unfinished_rollouts"]:
        console.print(
            f"unfinished rollouts: {', '.join(status['unfinished_rollouts'])} "
            "(settle with `evergreen rollout resume`)"
        )


def deploy_command(
    model_or_bento: str = typer.Argument(
        ..., help="A model tag, a bento tag, or a folder with a BentoML service.py."
    ),
    strategy: str = typer.Option("canary", help="blue-green or canary."),
    steps: str = typer.Option("10,50,100", help="Canary weights in percent, ending at 100."),
    step_seconds: float = typer.Option(30.0, min=0, help="Canary analysis window per step."),
    keep_seconds: float = typer.Option(
        60.0, min=0, help="Blue-green: how long blue keeps running for an instant rollback."
    ),
    observe_seconds: float = typer.Option(
        0.0, min=0, help="Blue-green: analysis window after the switch (0: none)."
    ),
    warmup: int = typer.Option(20, min=0, help="Warm-up requests to each new replica."),
    replicas: int = typer.Option(2, min=1, help="Replicas of the new revision."),
    env: list[str] = typer.Option([], "--env", help="KEY=VALUE for the replicas (repeatable)."),
    target: str = typer.Option(
        None, help="process, container or kubernetes (default: EVERGREEN_DEPLOY_TARGET)."
    ),
    image: str = typer.Option(
        None,
        help="Container image (default for the container target: the bento's own, "
        "containerized first if missing).",
    ),
    out: Path = typer.Option(None, help="Kubernetes: where to write the manifests."),
    reason: str = typer.Option("", help="Why (recorded in the ledger)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Roll a model or bento out without downtime (blue-green or canary).

    A failed analysis rolls back by itself (exit status 1); the previous revision serves
    throughout. With --target kubernetes the manifests are rendered and validated instead.
    """
    from evergreen.rollout.analysis import AnalysisPolicy
    from evergreen.rollout.revisions import resolve_revision
    from evergreen.rollout.strategies import BlueGreen, Canary

    settings = get_settings().ensure_dirs()
    spec = resolve_revision(settings, model_or_bento, _env(env), replicas)
    if target == "kubernetes":
        _render_kubernetes(spec, image, out, steps, step_seconds, replicas, as_json)
        return
    policy = AnalysisPolicy(max_p99_ms=settings.serve_p99_budget_ms)
    if strategy == "blue-green":
        chosen = BlueGreen(warmup, observe_seconds, keep_seconds, analysis=policy)
    elif strategy == "canary":
        try:
            weights = tuple(int(s) for s in steps.split(","))
            chosen = Canary(weights, step_seconds, min(warmup, 5), analysis=policy)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--steps") from None
    else:
        raise typer.BadParameter(f"{strategy!r}: use blue-green or canary", param_hint="--strategy")
    controller = _controller(_target(target, image))
    _ensure_image(settings, controller.supervisor.target, spec)
    result = controller.deploy(spec, chosen, reason or f"evergreen deploy {model_or_bento}")
    if as_json:
        _echo_json(result.to_dict())
        return
    console.print(
        f"{result.rollout.revision} ({spec.model_version}) serves: {chosen.kind} completed in "
        f"{result.duration_s:.1f} s"
    )


def _ensure_image(settings, target, spec) -> None:
    from evergreen.rollout.container import ensure_image
    from evergreen.serving.containers import ContainerSetupError

    try:
        image = ensure_image(settings, target, spec)
    except ContainerSetupError as error:
        console.print(f"error: {error}")
        raise typer.Exit(1) from None
    if image is not None and image.built:
        console.print(f"{image.tag}: image built in {image.seconds:.0f} s")


def _target(name: str | None, image: str | None):
    if name is None:
        return None  # the settings' deploy_target
    if name == "process":
        from evergreen.rollout.targets import ProcessTarget

        return ProcessTarget()
    if name != "container":
        raise typer.BadParameter(
            f"{name!r}: use process, container or kubernetes", param_hint="--target"
        )
    from evergreen.rollout.container import ContainerTarget, engine_available

    engine = get_settings().container_engine
    usable, why = engine_available(engine)
    if not usable:
        raise typer.BadParameter(f"no container engine here: {why}", param_hint="--target")
    return ContainerTarget(image=image, engine=engine)  # no --image: the bento's own image


def _render_kubernetes(spec, image, out, steps, step_seconds, replicas, as_json) -> None:
    from evergreen.rollout.kubernetes import (
        ClusterOptions,
        deployment_manifests,
        render_manifests,
        rollout_manifests,
        validate_manifests,
    )

    image = image or f"{spec.serve_target}"
    options = ClusterOptions(
        replicas=replicas,
        canary_steps=tuple(int(s) for s in steps.split(",")),
        step_pause_s=int(step_seconds),
        p99_budget_ms=get_settings().serve_p99_budget_ms,
    )
    manifests = deployment_manifests(spec, image, options) + rollout_manifests(spec, image, options)
    errors = validate_manifests(manifests)
    out = out or get_settings().serving_dir / "kubernetes" / spec.model_version.replace(":", "-")
    paths = render_manifests(spec, image, out, options)
    _report_rendered(paths, errors, as_json)


def _report_rendered(paths: dict[str, Path], errors: list[str], as_json: bool) -> None:
    """Say where rendered files went and whether they validated; exit 1 when they did not."""
    if as_json:
        _echo_json({"paths": {k: str(v) for k, v in paths.items()}, "errors": errors})
    else:
        for name, path in paths.items():
            console.print(f"{name}: {path}")
        console.print("valid" if not errors else "INVALID:\n" + "\n".join(errors))
    if errors:
        raise typer.Exit(1)


def helm_values_command(
    image: str = typer.Option(..., help="Evergreen's image (its checkout at /app)."),
    out: Path = typer.Option(None, help="Where to write (default: serving/kubernetes/dagster)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Write Helm values for Dagster's chart (Evergreen's code location as user code, the
    cluster's PostgreSQL, the K8s run launcher, run retries) and the Celery workers'
    Deployment, validated offline against the chart's and Kubernetes' schemas."""
    from evergreen.rollout.helm import (
        dagster_helm_values,
        render_helm_values,
        validate_helm_values,
        worker_deployment,
    )
    from evergreen.rollout.kubernetes import validate_manifests

    settings = get_settings()
    errors = validate_helm_values(dagster_helm_values(settings, image))
    errors += validate_manifests([worker_deployment(image)])
    out = out or settings.serving_dir / "kubernetes" / "dagster"
    paths = render_helm_values(settings, image, out)
    _report_rendered(paths, errors, as_json)


def rollback_command(
    reason: str = typer.Option("manual rollback", help="Why (recorded in the ledger)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Serve the previous champion again: instantly if it is still kept running, else after
    starting it (seconds); the current revision is drained and stopped."""
    began = time.monotonic()
    result = _controller().rollback(reason)
    seconds = time.monotonic() - began
    if as_json:
        _echo_json({**result.to_dict(), "seconds": round(seconds, 3)})
        return
    console.print(
        f"rolled back to {result.rollout.revision} ({result.rollout.model_version}) in "
        f"{seconds:.1f} s. {result.detail}"
    )


CLOCKS = ("both", "wall", "data")


def history_command(
    at: str = typer.Option(
        None,
        "--at",
        help="A time (ISO 8601, UTC if no offset), a day (2018-06-06) or 'now'.",
    ),
    clock: str = typer.Option(
        "both",
        "--clock",
        help="Which clock --at is on: 'wall' (when the router served: the ledger's time), "
        "'data' (the transactions' own time: which models scored that data day), or 'both'.",
    ),
    limit: int = typer.Option(20, min=1, help="Rollouts listed without --at."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """What served at a time and why (--at, on the wall clock and on data days), or the
    latest rollouts."""
    from evergreen.rollout.records import list_rollouts, rollout_ledger

    settings = get_settings()
    if clock not in CLOCKS:
        raise typer.BadParameter(
            f"{clock!r} is not one of {', '.join(CLOCKS)}", param_hint="--clock"
        )
    if at is not None:
        _history_at(settings, at, clock, as_json)
        return
    with rollout_ledger(settings) as conn:
        rollouts = list_rollouts(conn, limit)
    rows = [
        {
            "rollout": r.id,
            "kind": r.kind,
            "status": r.status,
            "revision": r.revision,
            "model_version": r.model_version,
            "from": r.from_revision or "",
            "started_at": r.started_at,
            "actor": r.actor,
            "reason": r.reason,
        }
        for r in rollouts
    ]
    if as_json:
        _echo_json(rows)
        return
    table = Table(title="Rollouts, newest first")
    for column in ("started_at", "kind", "revision", "model_version", "from", "status", "reason"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            *(
                str(row[c])[:19] if c == "started_at" else str(row[c])
                for c in (
                    "started_at",
                    "kind",
                    "revision",
                    "model_version",
                    "from",
                    "status",
                    "reason",
                )
            )
        )
    console.print(table if rows else "No rollouts yet.")


def _history_at(settings, at: str, clock: str, as_json: bool) -> None:
    """``history --at``: what served at ``at`` on the wall clock, on the data's clock, or both."""
    from evergreen.rollout.status import parse_time, scored_on, served_at

    try:
        moment = parse_time(at)
    except ValueError:
        raise typer.BadParameter(
            f"{at!r} is not a time like 2018-05-01T12:00:00 or a day like 2018-05-01",
            param_hint="--at",
        ) from None
    wall = served_at(settings, moment) if clock != "data" else None
    data = scored_on(settings, moment.astimezone(dt.UTC).date()) if clock != "wall" else None
    if as_json:  # the wall clock's answer, with the data day's under "data_day"
        _echo_json(data if wall is None else {**wall, **({"data_day": data} if data else {})})
        return
    if wall is not None:
        serving = ", ".join(
            f"{s['revision']} ({s['model_version']}) {s['weight']}%" for s in wall["serving"]
        )
        console.print(
            f"At {wall['at']} on the wall clock (when the router served, UTC): "
            f"{serving or 'nothing served'}."
        )
        console.print(f"Why: {wall['why']}")
    if data is not None:
        _print_data_day(data)


def _print_data_day(data: dict) -> None:
    """The models that scored one data day's transactions, and why each was serving."""
    head = f"On data day {data['day']} (the transactions' own time)"
    if not data["scored"]:
        console.print(f"{head}: nothing scored. Why: {data['why']}")
        return
    console.print(f"{head}: {data['transactions']:,} transactions scored by")
    table = Table(show_header=True)
    for column in ("model_version", "transactions", "revision", "scored (wall clock)", "why"):
        table.add_column(column)
    for s in data["scored"]:
        table.add_row(
            s["model_version"],
            f"{s['transactions']:,} ({s['share']:.0%})",
            s["revision"] or "-",
            f"{s['scored_from'][:19]} to {s['scored_to'][:19]}",
            s["why"],
        )
    console.print(table)


def stop_command() -> None:
    """Stop the watchdog, every replica and the router (requests in flight are answered)."""
    stopped = _controller().stop()
    console.print(f"stopped {', '.join(stopped) or 'nothing (nothing was running)'}")


def resume_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Settle rollouts a dead controller left open: complete or roll back each."""
    results = _controller().resume()
    if as_json:
        _echo_json([r.to_dict() for r in results])
        return
    if not results:
        console.print("No unfinished rollout.")
    for result in results:
        console.print(f"{result.rollout.id}: {result.status} ({result.detail})")
