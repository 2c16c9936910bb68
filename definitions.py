"""The Evergreen code location: every asset, check, resource and sensor."""

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
)

from assets.feature_store import feature_definitions, online_features, training_set
from assets.features import customer_spending_features, terminal_risk_features
from assets.raw_data import raw_labels, raw_transactions
from evergreen.resources import EvergreenResource
from sensors.landing_sensor import landing_zone_sensor

# Automation conditions act only while a sensor evaluates them: on by default, as landing is.
automation_sensor = AutomationConditionSensorDefinition(
    "evergreen_automation",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)

defs = Definitions(
    assets=[
        raw_transactions,
        raw_labels,
        customer_spending_features,
        terminal_risk_features,
        feature_definitions,
        online_features,
        training_set,
    ],
    sensors=[landing_zone_sensor, automation_sensor],
    resources={"evergreen": EvergreenResource()},
)
