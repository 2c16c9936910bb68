"""A small real BentoML service with the fraud bento's API, for the rollout tests.

Same request and response bodies as ``bentos/fraud_detection`` (``evergreen.serving.schemas``),
same metrics (BentoML's under the same namespace, and ``evergreen.serving.telemetry``'s), same
prediction log (``evergreen.serving.prediction_log``), and
``/readyz``, ``/livez``, ``/metrics`` from BentoML, but a formula instead of a model and the
online store, so a test starts it in seconds. Environment variables choose its behaviour, so
one service plays a good revision, a bad one or a slow starter:

- ``FIXTURE_MODEL_VERSION``: the ``model_version`` every prediction carries;
- ``FIXTURE_SCORE_OFFSET``: added to every fraud probability (clipped to [0, 1]);
- ``FIXTURE_ERROR_RATE``: share of ``/predict`` calls answered with HTTP 500;
- ``FIXTURE_STARTUP_DELAY``: seconds ``/readyz`` answers 503 after the worker starts;
- ``FIXTURE_LATENCY_MS``: milliseconds added to every prediction.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import random
import time
import uuid
from pathlib import Path

import bentoml

from evergreen.serving.prediction_log import PredictionLog
from evergreen.serving.schemas import Prediction, PredictRequest, PredictResponse, Transaction
from evergreen.serving.telemetry import ServingTelemetry

MODEL_VERSION = os.environ.get("FIXTURE_MODEL_VERSION", "fixture:v1")
SCORE_OFFSET = float(os.environ.get("FIXTURE_SCORE_OFFSET", "0"))
ERROR_RATE = float(os.environ.get("FIXTURE_ERROR_RATE", "0"))
STARTUP_DELAY_S = float(os.environ.get("FIXTURE_STARTUP_DELAY", "0"))
LATENCY_S = float(os.environ.get("FIXTURE_LATENCY_MS", "0")) / 1000
THRESHOLD = 0.5


def fraud_probability(tx: Transaction) -> float:
    """A deterministic score: a logistic curve of the amount, shifted by the offset."""
    base = 1.0 / (1.0 + math.exp(-(tx.amount - 120.0) / 40.0))
    return min(1.0, max(0.0, base + SCORE_OFFSET))


def _predictions_dir() -> Path:
    override = os.environ.get("EVERGREEN_PREDICTIONS_DIR")
    home = Path(os.environ.get("EVERGREEN_HOME", ".evergreen"))
    return Path(override) if override else home / "predictions"


@bentoml.service(
    name="fraud_detection",
    workers=1,
    threads=4,
    traffic={"timeout": 10, "max_concurrency": 512},
    logging={"access": {"enabled": False}},
    metrics={"enabled": True, "namespace": "evergreen"},
)
class FraudFixture:
    """Scores transactions like the fraud bento, with configurable misbehaviour."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.random = random.Random(0)
        self.log = PredictionLog(_predictions_dir())
        self.telemetry = ServingTelemetry(MODEL_VERSION, "fixture")

    def __is_ready__(self) -> bool:
        return time.monotonic() - self.started >= STARTUP_DELAY_S

    @bentoml.api(route="/predict")
    def predict(self, request: PredictRequest, /) -> PredictResponse:
        """Score one transaction or a batch."""
        from starlette.responses import JSONResponse

        if LATENCY_S:
            time.sleep(LATENCY_S)
        if ERROR_RATE and self.random.random() < ERROR_RATE:
            return JSONResponse({"error": "fixture: injected failure"}, status_code=500)
        request_id = uuid.uuid4().hex
        predictions = [
            Prediction(
                transaction_id=tx.transaction_id,
                fraud_probability=fraud_probability(tx),
                decision=fraud_probability(tx) >= THRESHOLD,
                threshold=THRESHOLD,
                model_version=MODEL_VERSION,
                request_id=request_id,
            )
            for tx in request.transactions
        ]
        self.log.append(_records(request.transactions, predictions))
        self.telemetry.scored(predictions)
        return PredictResponse(
            request_id=request_id, model_version=MODEL_VERSION, predictions=predictions
        )

    @bentoml.on_shutdown
    def close(self) -> None:
        self.log.close()


def _records(transactions: list[Transaction], predictions: list[Prediction]) -> list[dict]:
    """The prediction log's records, as the real service writes them (no feature values)."""
    at = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat()
    return [
        {
            "request_id": p.request_id,
            "predicted_at": at,
            "model_version": p.model_version,
            "transaction_id": tx.transaction_id,
            "customer_id": tx.customer_id,
            "terminal_id": tx.terminal_id,
            "amount": tx.amount,
            "tx_datetime": tx.tx_datetime.replace(tzinfo=None).isoformat(),
            "region": tx.region,
            "channel": tx.channel,
            "card_type": tx.card_type,
            "features": {},
            "features_missing": [],
            "fraud_probability": p.fraud_probability,
            "threshold": p.threshold,
            "decision": p.decision,
        }
        for tx, p in zip(transactions, predictions, strict=True)
    ]
