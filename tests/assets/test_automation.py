"""Automation on data days: a newly landed raw day refreshes its own feature partitions only,
even though the simulated days lie years before the wall clock's latest partition."""

from dagster import AssetKey, Definitions, evaluate_automation_conditions, materialize

from assets.features import customer_spending_features, terminal_risk_features
from assets.raw_data import raw_labels, raw_transactions
from evergreen.resources import EvergreenResource
from tests.conftest import day

FEATURES = (customer_spending_features, terminal_risk_features)


def _requested(result) -> dict[str, list[str]]:
    return {
        a.key.to_user_string(): sorted(result.get_requested_partitions(AssetKey(a.key.path)))
        for a in FEATURES
    }


def _materialize(assets, days, settings, instance) -> None:
    resources = {"evergreen": EvergreenResource(home=str(settings.home))}
    for i in days:
        result = materialize(
            assets, partition_key=day(i).isoformat(), instance=instance, resources=resources
        )
        assert result.success


def test_a_new_raw_day_refreshes_exactly_its_feature_partitions(settings, instance):
    defs = Definitions(
        assets=[raw_transactions, raw_labels, *FEATURES],
        resources={"evergreen": EvergreenResource(home=str(settings.home))},
    )
    raw = [raw_transactions, raw_labels]
    _materialize(raw, range(3), settings, instance)
    baseline = evaluate_automation_conditions(defs=defs, instance=instance)
    _materialize(list(FEATURES), range(3), settings, instance)
    settled = evaluate_automation_conditions(defs=defs, instance=instance, cursor=baseline.cursor)
    assert settled.total_requested == 0

    _materialize(raw, [3], settings, instance)
    fresh = evaluate_automation_conditions(defs=defs, instance=instance, cursor=settled.cursor)

    expected = [day(3).isoformat()]
    assert _requested(fresh) == {a.key.to_user_string(): expected for a in FEATURES}
