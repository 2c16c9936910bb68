"""The promotion watch on a real instance and ledger: a champion waits for the labels of its
first production days, then is confirmed when it is not worse than the model it replaced, or
rolled back (and the restored model redeployed) when it clearly is."""

from evergreen.loop.promotion_review import current_crowning, reviews
from evergreen.models.ledger import ModelStatus
from evergreen.models.registry import ModelRegistry
from sensors.promotion_watch import promotion_watch
from tests.conftest import day
from tests.sensors.conftest import (
    LIVE_DAYS,
    crown,
    labels_loaded,
    load_live_days,
    log_predictions,
    register,
    rows_of,
    tick,
)


def _serve(settings, instance, frame, tag, days) -> None:
    log_predictions(settings, rows_of(frame, days), tag)
    load_live_days(settings, instance, days)


def test_a_champion_waits_for_matured_labels_then_is_confirmed(
    loop_home, instance, training_frame, quick_models, noise_model
):
    settings = loop_home
    register(settings, noise_model, status="champion")
    new = register(settings, quick_models[0])
    crown(settings, new)
    _serve(settings, instance, training_frame, new, LIVE_DAYS[:4])
    labels_loaded(instance, through=16)  # its first days (10..12) have no matured labels yet

    early = tick(promotion_watch, settings, instance)

    assert early.run_requests == []
    assert "0 of its first 3 production days have matured labels" in early.skip_message
    assert reviews(settings) == []

    labels_loaded(instance)  # through day 23: days 10..12 + the 7-day delay have landed
    later = tick(promotion_watch, settings, instance, early.cursor)

    assert later.run_requests == []
    registry = ModelRegistry(settings)
    assert registry.champion().tag == new
    confirmed = registry.history(new)[-1]
    assert confirmed.status is ModelStatus.CHAMPION and confirmed.reason.startswith("confirmed")
    [review] = reviews(settings)
    assert review["outcome"] == "confirm" and review["days"][0] == day(10).isoformat()
    assert review["numbers"]["average_precision"]["delta"] > 0
    assert review["numbers"]["frauds"] >= settings.monitor_min_frauds
    # Reviewed once per reign.
    assert tick(promotion_watch, settings, instance).run_requests == []
    assert len(reviews(settings)) == 1


def test_a_clearly_worse_champion_is_rolled_back_and_its_predecessor_redeployed(
    loop_home, instance, training_frame, quick_models, noise_model
):
    settings = loop_home
    good = register(settings, quick_models[0], status="champion")
    bad = register(settings, noise_model)
    crown(settings, bad)  # promoted on the evidence its cut-off had
    _serve(settings, instance, training_frame, bad, LIVE_DAYS[:3])
    labels_loaded(instance)

    result = tick(promotion_watch, settings, instance)

    registry = ModelRegistry(settings)
    assert registry.champion().tag == good
    assert registry.get(bad).status is ModelStatus.REJECTED
    restored = registry.history(good)[-1]
    assert restored.status is ModelStatus.CHAMPION and restored.reason.startswith("rolled back")
    assert "clearly worse" in restored.reason and "AP -" in restored.reason
    [request] = result.run_requests
    assert request.job_name == "deploy"
    assert request.run_key == current_crowning(registry).deploy_run_key
    assert request.tags["evergreen/model_tag"] == good
    [review] = reviews(settings)
    assert review["outcome"] == "roll_back" and review["predecessor"] == good
    assert review["numbers"]["average_precision"]["ci_high"] < -0.02

    # The restored reign is not judged again against the model it replaced.
    after = tick(promotion_watch, settings, instance, result.cursor)
    assert after.run_requests == [] and registry.champion().tag == good
    assert [r["outcome"] for r in reviews(settings)] == ["roll_back", "not_reviewed"]
