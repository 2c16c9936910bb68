"""The prediction log: one JSON line per prediction, one file per serving process and day.

Layout: ``<predictions_dir>/date=YYYY-MM-DD/<replica>.jsonl``, the day being the transaction's
(UTC) day, so the ``live_predictions`` asset loads a day the way the raw partitions are cut. The
replica name (host, pid, start time) is unique per process, so any number of replicas append
without sharing a file and without locks; a request's lines go out in one ``write`` and are
flushed before the response, so a crash loses at most the request in flight.

Why not ``bentoml.monitor``: its default monitor writes ``<log_path>/<name>/data/data.<worker
index>.log`` through a TimedRotatingFileHandler. Two replicas (a rolling deployment runs an old
and a new one side by side) both have worker index 1, so they would append to, and rotate, the
same file; and its files are cut by wall-clock time, not by the transaction's day.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from pydantic import ConfigDict, TypeAdapter

from evergreen.serving.schemas import Transaction

LOG_GLOB = "*.jsonl"
_OPEN_DAYS = 8  # files kept open per process: a replay of history touches many days
# pydantic's serializer (Rust): a record's line in 4 µs against json.dumps' 19 µs, the same
# values once parsed; compact, NaN as null.
_LINE = TypeAdapter(dict[str, Any], config=ConfigDict(ser_json_inf_nan="null"))


def day_dir(predictions_dir: Path, day: dt.date) -> Path:
    """The folder of one day's log files."""
    return predictions_dir / f"date={day.isoformat()}"


def replica_name() -> str:
    """A name unique to this process: host, pid and start time."""
    started = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    return f"{socket.gethostname()}-{os.getpid()}-{started}"


def _number(value: Any) -> Any:
    """A feature value as JSON: NaN and infinities have no JSON form, they log as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def prediction_records(
    transactions: Sequence[Transaction],
    features: dict[str, list[Any]],
    scored: Sequence[Any],
    predicted_at: dt.datetime,
) -> list[dict[str, Any]]:
    """One log record per prediction: inputs, the feature values used, score and decision.

    ``scored`` holds the ``Prediction`` objects of the same transactions, in order."""
    at = predicted_at.astimezone(dt.UTC).replace(tzinfo=None).isoformat()
    records = []
    for i, (tx, prediction) in enumerate(zip(transactions, scored, strict=True)):
        records.append(
            {
                "request_id": prediction.request_id,
                "predicted_at": at,
                "model_version": prediction.model_version,
                "transaction_id": tx.transaction_id,
                "customer_id": tx.customer_id,
                "terminal_id": tx.terminal_id,
                "amount": tx.amount,
                "tx_datetime": tx.tx_datetime.replace(tzinfo=None).isoformat(),
                "region": tx.region,
                "channel": tx.channel,
                "card_type": tx.card_type,
                "features": {name: _number(column[i]) for name, column in features.items()},
                "features_missing": prediction.features_missing,
                "fraud_probability": prediction.fraud_probability,
                "threshold": prediction.threshold,
                "decision": prediction.decision,
            }
        )
    return records


class PredictionLog:
    """Appends records to this process's file of each day; safe across threads."""

    def __init__(self, predictions_dir: Path, replica: str | None = None) -> None:
        self.predictions_dir = predictions_dir
        self.replica = replica or replica_name()
        self._files: dict[dt.date, IO[str]] = {}
        self._lock = threading.Lock()  # threads of this process only; processes never share

    def path(self, day: dt.date) -> Path:
        """This process's file for ``day``."""
        return day_dir(self.predictions_dir, day) / f"{self.replica}.jsonl"

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        """Write the records (one line each) and flush; one write per day touched."""
        by_day: dict[dt.date, list[str]] = {}
        for record in records:
            line = _LINE.dump_json({**record, "replica": self.replica}).decode()
            by_day.setdefault(dt.date.fromisoformat(record["tx_datetime"][:10]), []).append(line)
        with self._lock:
            for day, lines in by_day.items():
                handle = self._files.get(day) or self._open(day)
                handle.write("\n".join(lines) + "\n")
                handle.flush()

    def _open(self, day: dt.date) -> IO[str]:
        path = self.path(day)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a", encoding="utf-8")
        if len(self._files) >= _OPEN_DAYS:  # close the file opened longest ago
            self._files.pop(next(iter(self._files))).close()
        self._files[day] = handle
        return handle

    def close(self) -> None:
        """Close every open file."""
        with self._lock:
            for handle in self._files.values():
                handle.close()
            self._files.clear()
