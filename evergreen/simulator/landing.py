"""The landing zone's layout, file formats and state file.

``OUT/transactions/date=D/part-N.parquet``: transactions of day D, no labels.
``OUT/labels/date=D/part-0.parquet``: labels of the transactions of day D - label_delay_days.
``OUT/_simulator.json``: the config and the number of days generated, for append mode.
Each file's mtime is its simulated landing time: the end of its landing day plus a few minutes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from evergreen.simulator.config import SimulatorConfig

STATE_FILE = "_simulator.json"
STATE_FORMAT = 1
LANDING_MINUTES = 5  # files of day D land at D+1 00:05 UTC

TRANSACTIONS_SCHEMA = pa.schema(
    [
        ("transaction_id", pa.int64()),
        ("tx_datetime", pa.timestamp("us")),
        ("customer_id", pa.int64()),
        ("terminal_id", pa.int64()),
        ("amount", pa.float64()),
        ("region", pa.string()),
        ("channel", pa.string()),
        ("card_type", pa.string()),
    ]
)
LABELS_SCHEMA = pa.schema([("transaction_id", pa.int64()), ("label", pa.int8())])


def transactions_path(out: Path, date: dt.date, part: int = 0) -> Path:
    """Where part ``part`` of day ``date``'s transactions lands."""
    return out / "transactions" / f"date={date.isoformat()}" / f"part-{part}.parquet"


def labels_path(out: Path, date: dt.date) -> Path:
    """Where the labels landing on ``date`` go."""
    return out / "labels" / f"date={date.isoformat()}" / "part-0.parquet"


def landing_time(date: dt.date, extra_minutes: int = 0) -> float:
    """POSIX time at which files landing on ``date`` arrive: the next midnight UTC plus minutes."""
    midnight = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return (midnight + dt.timedelta(minutes=LANDING_MINUTES + extra_minutes)).timestamp()


def transactions_table(truth: pd.DataFrame) -> pa.Table:
    """The landed transactions: the truth without labels, segments as plain strings."""
    arrays = []
    for field in TRANSACTIONS_SCHEMA:
        column = truth[field.name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            # Decoding in Arrow avoids a million Python strings per column.
            arrays.append(pa.array(column).dictionary_decode().cast(field.type))
        else:
            arrays.append(pa.array(column.to_numpy(), type=field.type))
    return pa.Table.from_arrays(arrays, schema=TRANSACTIONS_SCHEMA)


def labels_table(truth: pd.DataFrame) -> pa.Table:
    """The labels of a day's transactions, by transaction id."""
    return pa.Table.from_arrays(
        [
            pa.array(truth["transaction_id"].to_numpy(), type=pa.int64()),
            pa.array(truth["tx_fraud"].to_numpy(), type=pa.int8()),
        ],
        schema=LABELS_SCHEMA,
    )


def write_parquet(table: pa.Table, path: Path, mtime: float) -> None:
    """Write atomically (readers never see half a file) and stamp the landing time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, temporary, compression="zstd")
    os.replace(temporary, path)
    os.utime(path, (mtime, mtime))


def read_state(out: Path) -> tuple[SimulatorConfig, int]:
    """The saved config and the number of days generated so far."""
    path = out / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{out} is not a simulated landing zone: {STATE_FILE} not found")
    state = json.loads(path.read_text())
    return SimulatorConfig.model_validate(state["config"]), int(state["days_generated"])


def write_state(out: Path, cfg: SimulatorConfig, days_generated: int) -> None:
    """Save the config and progress; the bytes depend on nothing else."""
    state = {
        "format": STATE_FORMAT,
        "config": cfg.model_dump(mode="json"),
        "days_generated": days_generated,
    }
    out.mkdir(parents=True, exist_ok=True)
    temporary = out / f".{STATE_FILE}.tmp"
    temporary.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, out / STATE_FILE)
