"""The Evergreen code location: every asset, check, resource and sensor."""

import datetime as dt

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
    FreshnessPolicy,
    apply_freshness_policy,
    with_source_code_references,
)

from assets.deployment import deployment
from assets.evaluation import evaluation_report, promotion_decision
from assets.feast_features import (
    feature_definitions,
    online_features,
    training_set,
    transaction_state,
)
from assets.features import customer_spending_features, terminal_risk_features
from assets.jobs import deploy_job, retrain_job
from assets.model_monitoring import model_monitoring
from assets.models import candidate_model
from assets.raw_data import raw_labels, raw_transactions
from assets.serving import bento, live_predictions, serves_like_offline
from evergreen.observe.rules import DAILY_FAIL_WINDOW, DAILY_WARN_WINDOW
from evergreen.resources import EvergreenResource
from evergreen.settings import get_settings
from evergreen.workers import run_executor
from sensors.alerts_sensor import open_alerts_sensor
from sensors.deploy_sensor import deploy_sensor
from sensors.drift_sensor import drift_sensor
from sensors.follow_up_sensor import follow_up_sensor
from sensors.landing_sensor import landing_zone_sensor
from sensors.performance_sensor import performance_sensor
from sensors.promotion_watch import promotion_watch
from sensors.retrain_floor_sensor import retrain_floor_sensor

# Automation conditions act only while a sensor evaluates them: on by default, as landing is.
automation_sensor = AutomationConditionSensorDefinition(
    "evergreen_automation",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)

# Freshness only monitors (the UI flags what is late); sensors and automation do the refreshing.
# Data arrives daily, so a day and a half without a new materialization is late; models and
# what serves them are held to the weekly retrain floor instead.
# The DataLate alert (`evergreen observe`) holds the landing zone to the same window.
DAILY_FRESHNESS = FreshnessPolicy.time_window(
    fail_window=DAILY_FAIL_WINDOW, warn_window=DAILY_WARN_WINDOW
)
WEEKLY_FRESHNESS = FreshnessPolicy.time_window(
    fail_window=dt.timedelta(days=8), warn_window=dt.timedelta(days=7)
)
_WEEKLY_GROUPS = {"models", "serving"}
_CHANGES_WITH_CODE_ONLY = {"feature_definitions"}


def _freshness(spec):
    name = spec.key.to_user_string()
    if name in _CHANGES_WITH_CODE_ONLY:
        return spec
    weekly = spec.group_name in _WEEKLY_GROUPS or name == "training_set"
    policy = WEEKLY_FRESHNESS if weekly else DAILY_FRESHNESS
    return apply_freshness_policy(spec, policy, overwrite_existing=False)


# Each asset links to the file and line that defines it (the UI's "open in editor").
defs = Definitions(
    assets=with_source_code_references(
        [
            raw_transactions,
            raw_labels,
            customer_spending_features,
            terminal_risk_features,
            feature_definitions,
            online_features,
            transaction_state,
            training_set,
            candidate_model,
            evaluation_report,
            promotion_decision,
            live_predictions,
            model_monitoring,
            bento,
            deployment,
        ]
    ),
    asset_checks=[serves_like_offline],
    jobs=[retrain_job, deploy_job],
    sensors=[
        landing_zone_sensor,
        automation_sensor,
        drift_sensor,
        performance_sensor,
        follow_up_sensor,
        retrain_floor_sensor,
        promotion_watch,
        deploy_sensor,
        open_alerts_sensor,
    ],
    resources={"evergreen": EvergreenResource()},
    # Local: Dagster's default executor; cluster: every step a task on the Celery workers.
    executor=run_executor(get_settings()),
).map_asset_specs(func=_freshness)
