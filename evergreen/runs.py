"""Run assets headless on the persistent Dagster instance, so the UI later shows the same runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dagster import AssetsDefinition, DagsterInstance, materialize

from evergreen.instance import ensure_instance
from evergreen.resources import EvergreenResource
from evergreen.settings import EvergreenSettings


@dataclass
class PartitionOutcome:
    """One asset partition's run: did it succeed, which checks failed and why, its metadata."""

    asset: str
    partition: str
    success: bool
    run_id: str
    failed_checks: dict[str, str] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)


def _outcome(asset: AssetsDefinition, partition: str | None, result) -> PartitionOutcome:
    failed = {
        e.check_name: e.description or ""
        for e in result.get_asset_check_evaluations()
        if not e.passed
    }
    metadata = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        metadata = {k: v.value for k, v in materialization.metadata.items()}
    return PartitionOutcome(
        asset.key.to_user_string(), partition, result.success, result.run_id, failed, metadata
    )


def materialize_partitions(
    assets: list[AssetsDefinition],
    partitions: Iterable[str | None],
    settings: EvergreenSettings,
    instance: DagsterInstance | None = None,
    on_outcome: Callable[[PartitionOutcome], None] | None = None,
) -> list[PartitionOutcome]:
    """Materialize each asset for each partition (None: unpartitioned), one run each, in order;
    a failure does not stop the rest."""
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
                # Step logs stay in the instance (the UI shows them); the terminal gets warnings.
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            )
            outcome = _outcome(asset, partition, result)
            outcomes.append(outcome)
            if on_outcome:
                on_outcome(outcome)
    return outcomes
