"""What a replica tells Prometheus besides BentoML's request metrics (``/metrics``):

- ``evergreen_fraud_probability`` (histogram, by model version): the scores it answered; a
  canary analysis compares it between canary and stable, and a shift is a model to look at;
- ``evergreen_missing_features_total`` (counter, by model version and feature view):
  transactions scored with a view missing (no online row within the TTL: an unknown card or
  terminal, or a materialization that stopped); their share of the scores says whether the
  online store keeps up;
- ``evergreen_realtime_state_update_seconds`` (histogram, by model version): how long writing
  a request's transactions to the request-time state took (the online store's write path);
- ``evergreen_model_info`` (gauge, always 1): which model, bento and FeatureService version
  this replica serves, to join onto any other series by ``model_version``.

Create it in the worker, after BentoML has set its multiprocess folder: prometheus_client must
be imported after that (``bentoml.metrics`` explains why). Gauges there need a multiprocess mode:
``livemax`` reports only live workers.
"""

from __future__ import annotations

from collections.abc import Iterable

from evergreen.serving.schemas import Prediction

SCORE_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)
STATE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class ServingTelemetry:
    """The replica's own metrics for one model version."""

    def __init__(
        self,
        model_version: str,
        bento: str,
        feature_service: str = "",
        feature_service_version: str = "",
    ) -> None:
        import prometheus_client as prom

        self.model_version = model_version
        self._scores = prom.Histogram(
            name="fraud_probability",
            namespace="evergreen",
            documentation="Fraud probabilities answered, by model version.",
            labelnames=["model_version"],
            buckets=SCORE_BUCKETS,
        ).labels(model_version)
        self._missing = prom.Counter(
            name="missing_features",
            namespace="evergreen",
            documentation="Transactions scored with a feature view missing (no online row "
            "within its TTL), by model version and view.",
            labelnames=["model_version", "view"],
        )
        self._state = prom.Histogram(
            name="realtime_state_update_seconds",
            namespace="evergreen",
            documentation="Seconds to write a request's transactions to the request-time "
            "state, by model version.",
            labelnames=["model_version"],
            buckets=STATE_BUCKETS,
        ).labels(model_version)
        info = prom.Gauge(
            name="model_info",
            namespace="evergreen",
            documentation="The model, bento and FeatureService version this replica serves "
            "(always 1).",
            labelnames=["model_version", "bento", "feature_service", "feature_service_version"],
            multiprocess_mode="livemax",
        )
        info.labels(model_version, bento, feature_service, feature_service_version).set(1)

    def scored(self, predictions: Iterable[Prediction]) -> None:
        """Count the answered predictions: their scores and missing feature views."""
        for prediction in predictions:
            self._scores.observe(prediction.fraud_probability)
            for view in prediction.features_missing:
                self._missing.labels(self.model_version, view).inc()

    def state_updated(self, seconds: float) -> None:
        """One write to the request-time state took ``seconds``."""
        self._state.observe(seconds)
