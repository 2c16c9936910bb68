"""The fraud-detection service: ``POST /predict`` on the champion model and the online store.

One transaction (its fields at the top level) or a batch (``{"transactions": [...]}``); each
prediction carries the fraud probability, the decision at the model's operating threshold, the
model version and the request id (``evergreen/serving/schemas.py``). The scoring itself is
``evergreen.serving.runtime.ServingRuntime``, shared with the benchmark and the infra validation.

Which model: inside a built bento, the one it was built with (``bentoml build --arg
model_tag=...``, kept in the bento and resolved from the model store under ``BENTOML_HOME``);
from source, ``--arg model_tag=...`` or ``EVERGREEN_MODEL_TAG``. ``EVERGREEN_HOME`` says where
the Feast online store and the prediction log are.

BentoML serves ``/livez``, ``/readyz`` (true only when the model and the online store are loaded
and answer a real lookup: ``__is_ready__``) and Prometheus ``/metrics``, to which the service
adds its own (``evergreen.serving.telemetry``): a histogram of the scores it answered by model
version (a cluster's canary analysis compares it between canary and stable pods), transactions
scored with a feature view missing, the request-time state's write latency, and an info gauge
naming the model and bento.
"""

from __future__ import annotations

import logging
import os

import bentoml
from starlette.responses import JSONResponse, Response

from evergreen.serving.guard import RequestGuard
from evergreen.serving.runtime import (
    NotReady,
    RequestRejected,
    ServingRuntime,
    freeze_startup_heap,
    serving_model,
)
from evergreen.serving.schemas import PredictRequest, PredictResponse
from evergreen.serving.telemetry import ServingTelemetry
from evergreen.settings import get_settings

# A child of BentoML's logger: its lines go where the server's own go.
logger = logging.getLogger("bentoml.evergreen")


def _model_tag() -> str:
    tag = getattr(bentoml.use_arguments(), "model_tag", None)
    tag = tag or os.environ.get("EVERGREEN_MODEL_TAG")
    if not tag:
        raise RuntimeError(
            "No model to serve: build the bento with --arg model_tag=NAME:VERSION "
            "(evergreen bento build does) or set EVERGREEN_MODEL_TAG."
        )
    return tag


# Worker processes per replica (EVERGREEN_SERVE_WORKERS, default 1): a rolling deployment runs
# two replicas side by side on this two-core machine; more workers pay off on more cores.
WORKERS = int(os.environ.get("EVERGREEN_SERVE_WORKERS", "1"))


def _telemetry(model) -> ServingTelemetry:
    """The replica's metrics (``evergreen.serving.telemetry``), created in the worker."""
    ctx = bentoml.server_context
    bento = f"{ctx.bento_name}:{ctx.bento_version}" if ctx.bento_name else "source"
    return ServingTelemetry(model.tag, bento, model.feature_service, model.feature_service_version)


@bentoml.service(
    name="fraud_detection",
    workers=WORKERS,
    threads=1,
    # One request scores in about a millisecond: no adaptive batching (it sheds load with 503
    # when its queue estimate trips), and no per-request access log line.
    traffic={"timeout": 10, "max_concurrency": 512},
    logging={"access": {"enabled": False}},
    metrics={"enabled": True, "namespace": "evergreen"},
    # No trace exporter is configured, yet the OpenTelemetry middleware would still build
    # three spans per request (~0.3 ms of CPU); the request id is in the body and the log.
    tracing={"excluded_urls": ["/predict", "/readyz", "/livez", "/healthz", "/metrics"]},
)
class FraudDetection:
    bento_model = bentoml.models.BentoModel(_model_tag())

    def __init__(self) -> None:
        model = serving_model(self.bento_model)
        self.runtime = ServingRuntime(get_settings(), model, telemetry=_telemetry(model)).open()
        self._last_reason = ""
        freeze_startup_heap()
        logger.info("serving %s from %s", self.runtime.model.tag, self.runtime.settings.home)

    # Positional-only: the body IS the request model (no wrapping key). ``async``: scoring takes
    # about a millisecond of CPU, run on the event loop it saves BentoML's hop to a worker
    # thread, which measured as costly as the scoring itself.
    @bentoml.api(route="/predict")
    async def predict(self, request: PredictRequest, /) -> PredictResponse:
        """Score one transaction or a batch."""
        try:
            answer = self.runtime.predict(request)
        except NotReady as exc:  # BentoML would hide the reason behind a bare 500
            return JSONResponse({"error": f"not ready: {exc}"}, status_code=503)
        except RequestRejected as exc:  # the same 400 as a validation error (a day outside the
            # served days, or a timestamp that would poison the request-time windows)
            body = {"error": f"{len(exc.errors)} transaction(s) refused", "detail": exc.errors}
            return JSONResponse(body, status_code=400)
        # The same JSON BentoML would write for a PredictResponse, without its generic path.
        return Response(answer.model_dump_json(), media_type="application/json")

    def __is_ready__(self) -> bool:
        readiness = self.runtime.readiness()
        if readiness.reason != self._last_reason:
            log = logger.info if readiness.ready else logger.warning
            log("readiness: %s", readiness.reason)
            self._last_reason = readiness.reason
        return readiness.ready

    @bentoml.on_shutdown
    def close(self) -> None:
        self.runtime.close()


# JSON bodies only (a multipart body without a boundary was a 500), and an OpenAPI document
# whose error schemas are the ones this service answers with.
FraudDetection.add_asgi_middleware(RequestGuard)
