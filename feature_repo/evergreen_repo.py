"""Feast's entry point for `feast plan` / `feast apply` run from this folder.

The definitions live in ``evergreen.features.feast_objects`` (the Dagster asset
``feature_definitions`` applies the same objects); this file only binds them to the feature
tables under ``$EVERGREEN_HOME/features`` and exposes them for Feast to find.
"""

import os

from evergreen.features.feast_objects import feast_definitions
from evergreen.settings import EvergreenSettings

if not os.environ.get("EVERGREEN_HOME"):
    raise SystemExit("Set EVERGREEN_HOME (for example $PWD/../.evergreen) before running feast.")

_settings = EvergreenSettings()
_settings.feast_dir.mkdir(parents=True, exist_ok=True)  # Feast creates the registry, not its folder
_definitions = feast_definitions(_settings.features_dir.resolve())

customer, terminal = _definitions.entities
customer_spending, terminal_risk, card_activity, terminal_activity = _definitions.feature_views
transaction_time_features, amount_vs_customer_habits = _definitions.on_demand_feature_views
fraud_detection = _definitions.feature_service
