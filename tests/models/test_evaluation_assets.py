"""evaluation_report and promotion_decision in real Dagster runs, on a real training set and
real registered CatBoost models: the first candidate is promoted, a candidate that fails the
gate is recorded as rejected and blocks what is downstream, and a champion is compared."""

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest
from dagster import MaterializeResult, asset, instance_for_test, materialize

from assets.evaluation import evaluation_report, promotion_decision
from assets.models import candidate_model
from assets.partitions import daily_partitions
from evergreen.models.comparison import EvaluationFiles, last_fitted_day, window_after
from evergreen.models.ledger import ModelStatus
from evergreen.models.registry import ModelRegistry
from evergreen.resources import EvergreenResource
from tests.conftest import make_settings
from tests.model_fixtures import CUTOFF, asset_settings

PARTITION = CUTOFF.isoformat()


@asset(partitions_def=daily_partitions, deps=[promotion_decision])
def served_model():
    """Stands for whatever is built from the promoted model (a bento, a rollout)."""
    return MaterializeResult(metadata={"built": True})


@pytest.fixture(scope="module")
def dagster_instance():
    with instance_for_test() as instance:
        yield instance


@pytest.fixture(scope="module")
def candidate_home(tmp_path_factory, training_frame, dagster_instance):
    """A home holding the cut-off's training set and the candidate_model run's model."""
    settings = make_settings(tmp_path_factory.mktemp("evaluation") / "home")
    path = settings.training_set_path(PARTITION)
    path.parent.mkdir(parents=True)
    training_frame.to_parquet(path, index=False)
    result = run([candidate_model], settings, dagster_instance)
    assert result.success
    return settings


def run(assets, settings, instance, **kwargs):
    return materialize(
        assets,
        partition_key=PARTITION,
        instance=instance,
        resources={"evergreen": EvergreenResource(home=str(settings.home))},
        **kwargs,
    )


def metadata(result, key: str) -> dict:
    events = [
        e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key
    ]
    assert events, f"{key} was not materialized"
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


def copy_of(settings, tmp_path):
    shutil.copytree(settings.home, tmp_path / "home")
    return make_settings(tmp_path / "home")


def candidate_tag(dagster_instance) -> str:
    record = dagster_instance.fetch_materializations(candidate_model.key, limit=1).records[0]
    return record.asset_materialization.metadata["model_tag"].value


@pytest.fixture(scope="module")
def evaluated(candidate_home, dagster_instance, tmp_path_factory):
    """A copy of the candidate's home after an evaluation_report run; the run's metadata."""
    settings = copy_of(candidate_home, tmp_path_factory.mktemp("evaluated"))
    result = run([evaluation_report], settings, dagster_instance)
    assert result.success
    return settings, metadata(result, "evaluation_report")


def test_the_evaluation_reports_metrics_a_report_and_a_plot(evaluated, dagster_instance):
    settings, report = evaluated

    assert report["candidate_tag"] == candidate_tag(dagster_instance)
    assert report["champion_tag"] == "none"
    assert "| ROC AUC |" in report["summary"] and "| region=" in report["segments"]
    assert 0 <= report["candidate_card_precision_at_100"] <= 1
    html = Path(report["evidently_report"]).read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "terminal_risk_7d" in html
    assert report["precision_recall_plot"].startswith("![precision-recall curves](data:image/png")
    # The UI's link: the report's place under the reports folder, served by `evergreen ui`.
    relative = Path(report["evidently_report"]).relative_to(asset_settings(settings).reports_dir)
    assert report["evidently_report_url"].endswith(relative.as_posix().replace("=", "%3D"))
    assert report["evidently_report_url"].startswith("http://127.0.0.1:")
    assert "| feature | method | score |" in report["feature_drift"]
    scored = pd.read_parquet(report["scored_frame"])
    assert (
        len(scored) == report["dagster/row_count"] and scored["candidate_score"].between(0, 1).all()
    )
    files = EvaluationFiles.for_cutoff(asset_settings(settings), CUTOFF)
    assert files.plot.exists() and files.read_summary()["champion"] is None


def test_the_first_candidate_is_promoted_and_unblocks_downstream(
    evaluated, dagster_instance, tmp_path
):
    settings = copy_of(evaluated[0], tmp_path)
    tag = candidate_tag(dagster_instance)

    result = run([promotion_decision, served_model], settings, dagster_instance)

    assert result.success
    decision = metadata(result, "promotion_decision")
    assert decision["outcome"] == "promote" and decision["champion_after"] == tag
    assert "There is no champion yet" in decision["verdict"]
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "candidate_promoted" and check.passed
    assert metadata(result, "served_model")["built"] is True
    assert ModelRegistry(asset_settings(settings)).champion().tag == tag


def test_a_candidate_failing_the_gate_is_rejected_and_blocks_downstream(
    evaluated, dagster_instance, tmp_path
):
    settings = copy_of(evaluated[0], tmp_path)
    tag = candidate_tag(dagster_instance)
    impossible = {"ops": {"promotion_decision": {"config": {"min_roc_auc": 0.999}}}}

    result = run(
        [promotion_decision, served_model],
        settings,
        dagster_instance,
        run_config=impossible,
        raise_on_error=False,
    )

    assert not result.success
    decision = metadata(result, "promotion_decision")
    assert decision["outcome"] == "reject" and decision["champion_after"] == "none"
    [check] = result.get_asset_check_evaluations()
    assert not check.passed
    assert "ROC AUC" in check.description and "the floor is 1.00: failed" in check.description
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "served_model" not in materialized
    registry = ModelRegistry(asset_settings(settings))
    assert registry.get(tag).status is ModelStatus.REJECTED
    last = registry.history(tag)[-1]
    assert last.actor == "dagster:promotion_decision" and "gate verdict" in last.reason


def test_the_decision_refuses_an_evaluation_against_an_outdated_champion(
    evaluated, dagster_instance, quick_models, tmp_path
):
    settings = asset_settings(copy_of(evaluated[0], tmp_path))
    registry = ModelRegistry(settings)
    newer = registry.register(quick_models[1], actor="test", reason="promoted meanwhile").tag
    registry.set_status(newer, ModelStatus.CHAMPION, actor="test", reason="by hand")

    result = run([promotion_decision], settings, dagster_instance, raise_on_error=False)

    assert not result.success
    failure = result.failure_data_for_node("promotion_decision")
    assert "champion changed since the evaluation" in failure.error.message
    assert registry.get(candidate_tag(dagster_instance)).status is ModelStatus.CANDIDATE


def test_the_comparison_window_leaves_out_days_the_champion_fitted():
    frame = pd.DataFrame(
        {"tx_datetime": pd.to_datetime(["2018-05-01 10:00", "2018-05-02 23:59"], utc=True)}
    )
    metadata = {"days": {"train": "2018-04-01..2018-04-20", "validation": "2018-04-21..2018-05-01"}}

    assert last_fitted_day(metadata) == dt.date(2018, 5, 1)
    assert window_after(frame, dt.date(2018, 5, 1))["tx_datetime"].dt.day.tolist() == [2]
    assert window_after(frame, None) is frame and last_fitted_day({}) is None


def test_a_candidate_is_compared_with_the_champion(
    candidate_home, dagster_instance, quick_models, tmp_path
):
    settings = asset_settings(copy_of(candidate_home, tmp_path))
    registry = ModelRegistry(settings)
    champion = registry.register(quick_models[0], actor="test", reason="an older model").tag
    registry.set_status(champion, ModelStatus.CHAMPION, actor="test", reason="served before")
    tag = candidate_tag(dagster_instance)

    result = run(
        [evaluation_report, promotion_decision], settings, dagster_instance, raise_on_error=False
    )

    report = metadata(result, "evaluation_report")
    assert report["champion_tag"] == champion and "champion_roc_auc" in report
    decision = metadata(result, "promotion_decision")
    assert "non_inferior_average_precision" in decision["verdict"]
    assert "non_inferior_roc_auc" in decision["verdict"]
    outcome = decision["outcome"]
    [check] = result.get_asset_check_evaluations()
    assert check.passed == (outcome == "promote") == result.success
    expected = {"promote": "champion", "challenger": "challenger", "reject": "rejected"}[outcome]
    assert registry.get(tag).status.value == expected
    retired = registry.get(champion).status
    assert retired is (ModelStatus.RETIRED if outcome == "promote" else ModelStatus.CHAMPION)


def test_a_corrupt_candidate_artifact_is_refused_in_words(
    candidate_home, dagster_instance, tmp_path
):
    settings = asset_settings(copy_of(candidate_home, tmp_path))
    tag = candidate_tag(dagster_instance)
    artifact = ModelRegistry(settings).artifact_path(tag) / "saved_model.cbm"
    artifact.write_bytes(artifact.read_bytes() + b"tampered")

    result = run([evaluation_report], settings, dagster_instance, raise_on_error=False)

    assert not result.success
    message = result.failure_data_for_node("evaluation_report").error.message
    assert f"the candidate {tag} cannot be used" in message and "corrupt" in message
    assert not EvaluationFiles.for_cutoff(settings, CUTOFF).scored.exists()
