"""candidate_model in real Dagster runs: a real training_set upstream, a real instance."""

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import materialize

from assets.feast_features import training_set
from assets.models import candidate_model
from evergreen.features.repo import FEATURE_SERVICE, definitions_version
from evergreen.models.bentoml_home import model_store
from evergreen.models.registry import ModelRegistry, ModelStatus
from evergreen.models.training import training_code_version
from evergreen.resources import EvergreenResource
from tests.model_fixtures import CUTOFF, asset_settings


def _run(assets, home, instance):
    return materialize(
        assets,
        partition_key=CUTOFF.isoformat(),
        instance=instance,
        resources={"evergreen": EvergreenResource(home=str(home.home))},
    )


def _metadata(result, key):
    events = [
        e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key
    ]
    materialization = events[-1].step_materialization_data.materialization
    return {k: v.value for k, v in materialization.metadata.items()}


@pytest.mark.e2e
def test_candidate_model_trains_registers_and_retrains_identically(pipeline_home, instance):
    first = _run([training_set, candidate_model], pipeline_home, instance)
    again = _run([candidate_model], pipeline_home, instance)

    assert first.success and again.success
    data, model = _metadata(first, "training_set"), _metadata(first, "candidate_model")
    tag = model["model_tag"]
    assert model["rows_train"] + model["rows_validation"] + model["rows_evaluation"] == (
        pq.read_metadata(data["path"]).num_rows
    )
    assert model["data_fingerprint"] == data["fingerprint"]
    assert model["training_window"] == data["window"]
    assert (model["feature_service"], model["feature_service_version"]) == (
        FEATURE_SERVICE,
        definitions_version(),
    )
    assert model["code_version"] == training_code_version()
    assert "| rank | feature | importance |" in model["feature_importances"]
    assert Path(model["learning_curve_png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 0 < model["threshold"] < 1 and model["validation_roc_auc"] > 0.7

    settings = asset_settings(pipeline_home)
    registry = ModelRegistry(settings)
    record = registry.get(tag)
    assert record.sha256 == model["sha256"] and record.cutoff == CUTOFF.isoformat()
    stored = model_store(settings).get(tag).info.metadata
    assert stored["data_fingerprint"] == data["fingerprint"]
    assert stored["seed"] == settings.seed

    retrained = _metadata(again, "candidate_model")
    assert retrained["model_tag"] == tag and retrained["retrained_identical_to"] == tag
    assert [r.tag for r in registry.records()] == [tag]
    events = registry.history(tag)
    assert [(e.status, e.actor) for e in events] == [(ModelStatus.CANDIDATE, "dagster")] * 2
    assert events[1].reason.startswith(f"retrained: identical to {tag}")
