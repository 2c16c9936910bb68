"""The Prometheus metric names Evergreen's dashboards and alerts read: one list, so the code
that exports a metric, the rules that alert on it and the Grafana dashboard that draws it
cannot drift apart.

Serving (a bento replica's ``/metrics``): BentoML's HTTP middleware exports
``<namespace>_request_total``, ``<namespace>_request_duration_seconds`` and
``<namespace>_request_in_progress``, labelled by ``endpoint`` and ``http_response_code``; the
fraud bento sets the namespace ``evergreen`` (``bentos/fraud_detection/service.py``), so its
names are ``evergreen_request_*`` and not BentoML's default ``bentoml_service_request_*``.
The bento also exports the score histogram ``evergreen_fraud_probability`` by
``model_version``.

The loop (champion age, newest landed and matured day, drift, retrains) is exported by the
observability side of issue 19 under the names below.
"""

from __future__ import annotations

SERVING_NAMESPACE = "evergreen"  # the fraud bento's BentoML metrics namespace
BENTOML_DEFAULT_NAMESPACE = "bentoml_service"  # a bento that sets none

# Serving: one replica each, scraped per instance.
REQUESTS_TOTAL = f"{SERVING_NAMESPACE}_request_total"  # counter: endpoint, http_response_code
REQUEST_DURATION_SECONDS = f"{SERVING_NAMESPACE}_request_duration_seconds"  # histogram
REQUESTS_IN_PROGRESS = f"{SERVING_NAMESPACE}_request_in_progress"  # gauge: endpoint
FRAUD_PROBABILITY = f"{SERVING_NAMESPACE}_fraud_probability"  # histogram: model_version
PREDICT_ENDPOINT = "/predict"

# The loop's state, exported as gauges and counters.
CHAMPION_AGE_DATA_DAYS = "evergreen_champion_age_data_days"  # gauge: newest labels - cut-off
NEWEST_LANDED_DAY_TIMESTAMP = "evergreen_newest_landed_day_timestamp"  # gauge: unix seconds
NEWEST_MATURED_LABEL_DAY_TIMESTAMP = "evergreen_newest_matured_label_day_timestamp"  # gauge
DRIFT_SEVERITY = "evergreen_drift_severity"  # gauge: share of features drifted, last judged day
RETRAINS_TOTAL = "evergreen_retrains_total"  # counter: outcome (accepted, suppressed, ...)

SERVING_METRICS = (REQUESTS_TOTAL, REQUEST_DURATION_SECONDS, REQUESTS_IN_PROGRESS)
LOOP_METRICS = (
    CHAMPION_AGE_DATA_DAYS,
    NEWEST_LANDED_DAY_TIMESTAMP,
    NEWEST_MATURED_LABEL_DAY_TIMESTAMP,
    DRIFT_SEVERITY,
    RETRAINS_TOTAL,
)
