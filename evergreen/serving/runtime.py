"""What a serving process holds: the model, the online store's reader, the prediction log.

The BentoML service (``bentos/fraud_detection/service.py``) and the bare Starlette app of the
benchmark both wrap one ``ServingRuntime``; neither adds logic of its own. The online store is
opened lazily and re-tried, so a replica started before ``feast apply`` comes up not ready (and
says why) rather than crashing.

A request, in order: its timestamps checked against the data time (``OutOfDataTime``, a 400),
the transactions written to the request-time state (idempotent per transaction id), the
features read (the request-time windows count only events before each transaction's time, so
a batch's earlier transactions count for its later ones and none for itself), the prediction
log, the answer. A replica killed after the state write and before the answer leaves the state as it
would be after the answer; the router's retry finds its transaction there and counts it once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evergreen.features.realtime import CARD_VIEW, TERMINAL_VIEW, out_of_bounds
from evergreen.features.realtime_redis import StoreUnavailable
from evergreen.serving.prediction_log import PredictionLog, prediction_records
from evergreen.serving.schemas import PredictRequest, PredictResponse, Transaction
from evergreen.serving.scoring import ServingModel, score
from evergreen.settings import EvergreenSettings

if TYPE_CHECKING:
    from evergreen.features.feast_client import OnlineReader
    from evergreen.serving.telemetry import ServingTelemetry

# An entity id no simulated customer or terminal has: the readiness probe's lookup.
PROBE_ID = 2**62
_RETRY_OPEN_S = 2.0
PREDICTIONS_DIR_ENV = "EVERGREEN_PREDICTIONS_DIR"
# "off": score without writing the request-time state (the infra validation's replay of shifted
# copies of landed transactions must not enter the live state).
STATE_WRITES_ENV = "EVERGREEN_STATE_WRITES"
# Fault injection for the kill test: exit the process right after the state write.
EXIT_AFTER_STATE_WRITE_ENV = "EVERGREEN_FAULT_EXIT_AFTER_STATE_WRITE"
REALTIME_VIEWS = {CARD_VIEW, TERMINAL_VIEW}
PREDICT_THREADS = 1  # one request's rows: threads cost more than they save


class NotReady(RuntimeError):
    """The runtime cannot score yet: the message says what is missing."""


class RequestRejected(ValueError):
    """A well-formed request this home cannot serve; ``errors`` are shaped like pydantic's
    (``loc``, ``msg``, ``type``) so the client reads one kind of 400."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{e['loc']}: {e['msg']}" for e in errors))
        self.errors = errors


class OutOfDataTime(RequestRejected):
    """Transactions whose timestamps are too far from the data's current time (they would
    poison the request-time windows)."""


def served_days(
    settings: EvergreenSettings, today: dt.date | None = None
) -> tuple[dt.date, dt.date]:
    """The first and last day a prediction may be logged under: the daily partitions'
    range (``start_date`` to ``end_date``, or to tomorrow in UTC, a day's grace for clocks).
    A day outside it is never loaded by ``live_predictions``, and each such day would be one
    more ``predictions/date=*`` folder a client could add at will."""
    today = today or dt.datetime.now(dt.UTC).date()
    last = settings.end_date - dt.timedelta(days=1) if settings.end_date else today
    return settings.start_date, last + dt.timedelta(days=1)


def check_served_days(settings: EvergreenSettings, transactions: list[Transaction]) -> None:
    """Raise ``RequestRejected`` naming every transaction whose day lies outside
    ``served_days``."""
    first, last = served_days(settings)
    errors = [
        {
            "type": "outside_served_days",
            "loc": ["transactions", i, "tx_datetime"],
            "msg": f"the day {tx.tx_datetime.date()} lies outside the served days "
            f"{first} to {last}",
        }
        for i, tx in enumerate(transactions)
        if not first <= tx.tx_datetime.date() <= last
    ]
    if errors:
        raise RequestRejected(errors)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str


def serving_model(stored: Any) -> ServingModel:
    """A ``ServingModel`` of a BentoML model (``bentoml.models.get(tag)``) as the registry
    saved it: the CatBoost classifier and the metadata of the model-layer contract."""
    import bentoml
    from catboost import Pool

    meta = stored.info.metadata
    missing = {"threshold", "feature_names", "cat_features", "feature_service_version"}
    missing -= set(meta)
    if missing:
        raise ValueError(f"model {stored.tag} lacks metadata {sorted(missing)}")
    names, categorical = list(meta["feature_names"]), list(meta["cat_features"])
    classifier = bentoml.catboost.load_model(stored)
    # The categorical columns' positions, found once: handed a bare list, CatBoost works them
    # out from the model on every call (``bench/pool_input.py``, same scores: a Pool of the
    # rows built per call takes 0.72-0.82 of the bare list's time for one row, 0.16-0.17 for 100).
    is_categorical = set(categorical)
    positions = [i for i, name in enumerate(names) if name in is_categorical]

    def predict_rows(rows: list[list[Any]]):
        if not rows:
            return []
        # Rows as lists: no pandas frame, no Pool of a frame (~20x faster per row). One thread
        # for the Pool too: its default (every core) wakes CatBoost's TBB worker, which then
        # spins in sched_yield and burns the other core for as long as requests keep coming
        # (process CPU twice the request's own; bench/serving.py's server CPU per request).
        pool = Pool(rows, cat_features=positions, thread_count=PREDICT_THREADS)
        return classifier.predict_proba(pool, thread_count=PREDICT_THREADS)[:, 1]

    return ServingModel(
        tag=str(stored.tag),
        threshold=float(meta["threshold"]),
        feature_names=names,
        cat_features=categorical,
        feature_service=str(meta.get("feature_service") or "fraud_detection"),
        feature_service_version=str(meta["feature_service_version"]),
        predict_rows=predict_rows,
    )


def freeze_startup_heap() -> None:
    """Move every object alive now (Feast, pandas, CatBoost, the model, the web framework:
    millions of objects) out of the garbage collector's reach (``gc.freeze``).

    They live as long as the process; yet each full collection, which the framework's
    per-request cycles trigger every few seconds, would walk them all and stall every request
    in flight: at 64 concurrent clients the bento's p99 was 214-236 ms against a p50 of 50 ms,
    and 59-88 ms once frozen. Call it once the process has loaded what it serves."""
    gc.freeze()


def predictions_dir(settings: EvergreenSettings) -> Path:
    """Where this process logs predictions: ``settings.predictions_dir``, unless
    ``EVERGREEN_PREDICTIONS_DIR`` says otherwise (the infra validation's replay keeps its log
    apart from the live one)."""
    override = os.environ.get(PREDICTIONS_DIR_ENV)
    return Path(override) if override else settings.predictions_dir


class ServingRuntime:
    """Scores requests with one model and the online store of one home; logs every
    prediction."""

    def __init__(
        self,
        settings: EvergreenSettings,
        model: ServingModel,
        log: PredictionLog | None = None,
        telemetry: ServingTelemetry | None = None,
    ) -> None:
        self.settings = settings
        self.model = model
        self.log = log if log is not None else PredictionLog(predictions_dir(settings))
        self.telemetry = telemetry  # the replica's metrics (None: not counted)
        self._reader: OnlineReader | None = None
        self._open_error = ""
        self._opened_at = 0.0
        self._lock = threading.Lock()
        self.writes_state = os.environ.get(STATE_WRITES_ENV, "on").lower() != "off"

    def open(self) -> ServingRuntime:
        """Open the online store now (importing Feast takes seconds: better at start-up than
        in the first request); a failure is kept as the not-ready reason and re-tried."""
        with contextlib.suppress(NotReady):
            self.reader()
        return self

    def reader(self) -> OnlineReader:
        """The online store's reader; opened on first use, re-tried every few seconds."""
        if self._reader is not None:
            return self._reader
        with self._lock:
            if self._reader is None and time.monotonic() - self._opened_at > _RETRY_OPEN_S:
                self._opened_at = time.monotonic()
                self._open_reader()
        if self._reader is None:
            raise NotReady(self._open_error)
        return self._reader

    def _open_reader(self) -> None:
        from evergreen.features.feast_client import OnlineReader, feature_store

        try:
            reader = OnlineReader.open(feature_store(self.settings), self.model.feature_service)
        except Exception as exc:  # a missing registry or store: report it, try again later
            self._open_error = f"online store of {self.settings.home} not usable: {exc}"
            return
        applied = reader.service.tags.get("version", "")
        if applied != self.model.feature_service_version:
            self._open_error = (
                f"model {self.model.tag} needs FeatureService {self.model.feature_service} "
                f"version {self.model.feature_service_version}, the store has {applied!r}"
            )
            return
        reader.checkpoint_in_background()  # no request waits on a WAL checkpoint's sync
        self._reader = reader

    def predict(self, request: PredictRequest) -> PredictResponse:
        """Score a request's transactions, add them to the request-time state and append them
        to the prediction log. Raises ``RequestRejected`` (nothing scored or written) for a day
        outside ``served_days`` and ``OutOfDataTime`` for a timestamp outside the data time's
        bounds, and ``NotReady`` (nothing scored or written: a 503 with the reason) when the
        online store's Redis does not answer."""
        check_served_days(self.settings, request.transactions)
        try:
            return self._predict(request)
        except StoreUnavailable as exc:  # nothing scored on features it could not read
            raise NotReady(f"online store unavailable: {exc}") from exc

    def _predict(self, request: PredictRequest) -> PredictResponse:
        request_id = uuid.uuid4().hex
        reader = self.reader()
        data_time = self._check_data_time(reader, request.transactions)
        realtime = self.writes_state and bool(reader.view_features.keys() & REALTIME_VIEWS)
        if realtime:  # first: a batch's earlier transactions then count for its later ones
            began = time.perf_counter()
            reader.state.record(
                [
                    (tx.transaction_id, tx.customer_id, tx.terminal_id, tx.tx_datetime, tx.amount)
                    for tx in request.transactions
                ],
                reader.connection(),
                data_time,
            )
            if self.telemetry is not None:
                self.telemetry.state_updated(time.perf_counter() - began)
        batch = score(reader, self.model, request.transactions, request_id)
        if realtime and os.environ.get(EXIT_AFTER_STATE_WRITE_ENV):
            os._exit(70)  # the fault test: killed between the state write and the answer
        now = dt.datetime.now(dt.UTC)
        self.log.append(
            prediction_records(request.transactions, batch.features.values, batch.predictions, now)
        )
        if self.telemetry is not None:
            self.telemetry.scored(batch.predictions)
        return PredictResponse(
            request_id=request_id, model_version=self.model.tag, predictions=batch.predictions
        )

    @staticmethod
    def _check_data_time(
        reader: OnlineReader, transactions: list[Transaction]
    ) -> dt.datetime | None:
        """Refuse timestamps that would poison the windows (``realtime.out_of_bounds``);
        returns the data time read."""
        if not reader.view_features.keys() & REALTIME_VIEWS:
            return None
        data_time = reader.state.data_time(reader.connection())
        errors = []
        for i, tx in enumerate(transactions):
            why = out_of_bounds(tx.tx_datetime, data_time)
            if why:
                errors.append(
                    {
                        "type": "tx_datetime_out_of_bounds",
                        "loc": ["transactions", i, "tx_datetime"],
                        "msg": why,
                        "input": tx.tx_datetime.isoformat(),
                    }
                )
        if errors:
            raise OutOfDataTime(errors)
        return data_time

    def readiness(self) -> Readiness:
        """Ready when the prediction log and the online store are writable, the store opens,
        holds this model's FeatureService version, and answers a real lookup that the model
        then scores."""
        unwritable = self.unwritable()
        if unwritable:
            return Readiness(False, unwritable)
        probe = Transaction(
            transaction_id=0,
            customer_id=PROBE_ID,
            terminal_id=PROBE_ID,
            amount=1.0,
            tx_datetime=dt.datetime.now(dt.UTC),
            region="probe",
            channel="probe",
            card_type="probe",
        )
        try:
            batch = score(self.reader(), self.model, [probe], "readyz")
        except NotReady as exc:
            return Readiness(False, str(exc))
        except Exception as exc:  # the store or the model failed to answer
            return Readiness(False, f"probe lookup failed: {type(exc).__name__}: {exc}")
        if not 0.0 <= batch.scores[0] <= 1.0:
            return Readiness(False, f"model answered {batch.scores[0]!r} for the probe")
        return Readiness(True, "ok")

    def unwritable(self) -> str:
        """Why this process could not write what serving writes (empty when it can): the
        prediction log's folder, and the online store's file and folder (SQLite's WAL journal
        needs both, even to read). A container running as a user who does not own the mounted
        home is the usual cause: it would answer 500s while ``/readyz`` said 200."""
        user = f"uid {os.getuid()}"
        folder = self.log.predictions_dir
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            return f"prediction log folder {folder} cannot be created by {user}: {error}"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"prediction log folder {folder} is not writable by {user}"
        store = self.settings.online_store_path
        for path in (store, store.parent):
            if path.exists() and not os.access(path, os.W_OK):
                return f"online store {path} is not writable by {user} (SQLite's WAL needs it)"
        return ""

    def close(self) -> None:
        self.log.close()
        if self._reader is not None:
            self._reader.close()
