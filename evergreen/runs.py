"""Run assets headless on the persistent Dagster instance, so the UI later shows the same runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dagster import AssetsDefinition, DagsterInstance, materialize

from evergreen.instance import ensure_instance
from evergreen.resources import EvergreenResource
from evergreen.settings import EvergreenSettings


class UnknownPartitionError(ValueError):
    """A partition the assets do not have; the message names them and the range."""


@dataclass
class PartitionOutcome:
    """One asset partition's run: did it succeed, which checks failed and why, its metadata."""

    asset: str
    partition: str
    success: bool
    run_id: str
    failed_checks: dict[str, str] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    error: str = ""  # the first line of the step failure, when the run failed


def _outcome(asset: AssetsDefinition, partition: str | None, result) -> PartitionOutcome:
    failed = {
        e.check_name: e.description or ""
        for e in result.get_asset_check_evaluations()
        if not e.passed
    }
    error = ""
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure and event.step_failure_data.error is not None:
                error = event.step_failure_data.error.message.strip().splitlines()[0]
                break
    metadata = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        metadata = {k: v.value for k, v in materialization.metadata.items()}
    return PartitionOutcome(
        asset.key.to_user_string(),
        partition,
        result.success,
        result.run_id,
        failed,
        metadata,
        error,
    )


def check_partitions(assets: list[AssetsDefinition], partitions: list[str | None]) -> None:
    """Raise ``UnknownPartitionError`` before anything runs if an asset lacks a partition
    (Dagster would fail each run with its own traceback)."""
    for asset in assets:
        definition = asset.partitions_def
        if definition is None:
            continue
        keys = definition.get_partition_keys()
        unknown = [p for p in partitions if p not in set(keys)]
        if unknown:
            span = f"{keys[0]} to {keys[-1]}" if keys else "none yet"
            raise UnknownPartitionError(
                f"{asset.key.to_user_string()} has no partition {', '.join(map(str, unknown[:3]))}"
                f"{' ...' if len(unknown) > 3 else ''} (its partitions: {span}; "
                "EVERGREEN_START_DATE and EVERGREEN_END_DATE set them)"
            )


def materialize_partitions(
    assets: list[AssetsDefinition],
    partitions: Iterable[str | None],
    settings: EvergreenSettings,
    instance: DagsterInstance | None = None,
    on_outcome: Callable[[PartitionOutcome], None] | None = None,
) -> list[PartitionOutcome]:
    """Materialize each asset for each partition (None: unpartitioned), one run each, in order;
    a failure does not stop the rest. Raises ``UnknownPartitionError`` first if a partition
    does not exist."""
    partitions = list(partitions)
    check_partitions(assets, partitions)
    if instance is None:
        ensure_instance(settings)
        instance = DagsterInstance.get()
    resources = {"evergreen": EvergreenResource(home=str(settings.home))}
    outcomes = []
    for partition in partitions:
        for asset in assets:
            result = materialize(
                [asset],
                partition_key=partition,
                instance=instance,
                resources=resources,
                raise_on_error=False,
                tags={"evergreen/trigger": "cli"},
                # Step logs stay in the instance (the UI shows them, stack traces too); the
                # terminal gets the outcome in one line from ``on_outcome``, not Dagster's
                # ERROR events with their "Stack Trace:" blocks.
                run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
            )
            outcome = _outcome(asset, partition, result)
            outcomes.append(outcome)
            if on_outcome:
                on_outcome(outcome)
    return outcomes
