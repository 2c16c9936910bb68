"""Feast's local materialization engine, with a columnar last step for Evergreen's online store.

``store.materialize`` runs Feast's local compute engine: read the source rows of the interval
through the offline store (``pull_latest_features`` dedupes them in DuckDB), validate, and in
the output node turn every value into a ``ValueProto`` (``feast.utils._convert_arrow_to_proto``)
for ``OnlineStore.online_write_batch``. That conversion is pure Python, ~3 s per 100k rows of a
seven-feature view here, and no stock engine or write path (push, ``write_to_online_store``)
avoids it.

This engine is the local engine with one node replaced: when the online store can take Arrow
(``EvergreenSqliteOnlineStore.online_write_arrow``), the output node hands it the batch as it
is; otherwise it behaves exactly as Feast's. The plan before it (source read, filter, dedupe,
validation) and everything around it (registry, materialization intervals) stay Feast's. It plugs
in through Feast's documented batch-engine extension point (``batch_engine: type:
evergreen.features.materialization.EvergreenComputeEngine`` in feature_store.yaml).

Imports Feast: import this module only where Feast is already imported.
"""

from __future__ import annotations

from typing import Any, Literal

from feast.infra.common.materialization_job import (
    MaterializationJobStatus,
    MaterializationTask,
)
from feast.infra.compute_engines.dag.context import ExecutionContext
from feast.infra.compute_engines.local.arrow_table_value import ArrowTableValue
from feast.infra.compute_engines.local.compute import (
    LocalComputeEngine,
    LocalComputeEngineConfig,
)
from feast.infra.compute_engines.local.feature_builder import LocalFeatureBuilder
from feast.infra.compute_engines.local.job import LocalMaterializationJob
from feast.infra.compute_engines.local.nodes import LocalOutputNode
from feast.infra.registry.base_registry import BaseRegistry


class EvergreenComputeEngineConfig(LocalComputeEngineConfig):
    """Same settings as Feast's local engine, under this engine's type name."""

    type: Literal["evergreen.features.materialization.EvergreenComputeEngine"] = (  # type: ignore[assignment]
        "evergreen.features.materialization.EvergreenComputeEngine"
    )


class ArrowOutputNode(LocalOutputNode):
    """Feast's output node, writing Arrow batches to a store that takes them."""

    def execute(self, context: ExecutionContext) -> ArrowTableValue:
        store = context.online_store
        write_arrow = getattr(store, "online_write_arrow", None)
        if write_arrow is None or not self.feature_view.online or self.feature_view.offline:
            return super().execute(context)
        table = self.get_single_table(context).data
        if table.num_rows:  # the store chunks it by materialization.online_write_batch_size
            write_arrow(context.repo_config, self.feature_view, table)
        output = ArrowTableValue(data=table)
        context.node_outputs[self.name] = output
        return output


class ArrowFeatureBuilder(LocalFeatureBuilder):
    """Feast's local plan with ``ArrowOutputNode`` as its last node."""

    def build_output_nodes(self, view: Any, input_node: Any) -> ArrowOutputNode:
        node = ArrowOutputNode("output", self.dag_root.view, inputs=[input_node])
        self.nodes.append(node)
        return node


class EvergreenComputeEngine(LocalComputeEngine):
    """Feast's local engine, materializing through ``ArrowFeatureBuilder``."""

    def _materialize_one(
        self, registry: BaseRegistry, task: MaterializationTask, **kwargs: Any
    ) -> LocalMaterializationJob:
        job_id = f"{task.feature_view.name}-{task.start_time}-{task.end_time}"
        context = self.get_execution_context(registry, task)
        try:
            builder = ArrowFeatureBuilder(registry, task, backend=self._get_backend(context))
            builder.build().execute(context)
            return LocalMaterializationJob(job_id, MaterializationJobStatus.SUCCEEDED)
        except Exception as exc:  # Feast's engine contract: the job carries the error
            return LocalMaterializationJob(job_id, MaterializationJobStatus.ERROR, error=exc)
