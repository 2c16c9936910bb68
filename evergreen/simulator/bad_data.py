"""Bad upstream data: corruptions applied to the files of one date, never to the truth.

Each kind, what it does to the files landing on its date, and what a correct pipeline should do:

- ``renamed_column``: ``amount`` is called ``amt``. Schema check fails; the file is quarantined.
- ``missing_column``: ``terminal_id`` is dropped. Schema check fails; the file is quarantined.
- ``wrong_type``: ``amount`` is written as strings ("12.5"). Type check fails; quarantined.
- ``null_keys``: about 1 % of ``customer_id`` are null. The rows with null keys are rejected
  (or the day is quarantined if they exceed a tolerance); they never reach features.
- ``duplicate_rows``: about 1 % of rows appear twice in the file (each copy right after the
  original). Deduplication on ``transaction_id`` keeps one copy; counts stay right.
- ``negative_amounts``: about 1 % of amounts are negated. A range check flags or rejects them.
- ``misdated``: about 1 % of ``tx_datetime`` are moved to the next day (the file stays sorted
  by time, so they end up last). A partition-date check flags rows outside their partition.
- ``empty_day``: the transactions file has the schema and no rows. The volume check flags the
  day; nothing is trained on it. Its labels still land ``label_delay_days`` later (they come
  from another system), so they refer to transactions the pipeline never received.
- ``late_file``: the day is split at noon; ``part-0`` (morning) lands as usual and ``part-1``
  (afternoon) lands a day later, with the next day's files and mtime. The volume check sees a
  short day first; the pipeline must pick up ``part-1`` when it arrives and re-process the day.
- ``repeated_file``: ``part-0`` lands again as ``part-1`` with identical bytes, 30 minutes later.
  Content hashing or deduplication ignores the copy; counts must not double.
- ``unknown_label_refs``: the labels file landing that day gets about 1 % extra rows whose
  ``transaction_id`` never existed (sequence numbers past the labelled day's last). A referential
  check drops them; they must not create rows or change metrics.

Every corruption draws from its own per-day stream, so bad data never changes other days.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from evergreen.simulator.config import BadDataKind
from evergreen.simulator.transactions import day_id_base

CORRUPTED_SHARE = 0.01
REPEATED_FILE_DELAY_MINUTES = 30
SORT_KEYS = [("tx_datetime", "ascending"), ("transaction_id", "ascending")]

Corruptor = Callable[[pa.Table, np.random.Generator], pa.Table]


def _sample(n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of about 1 % of ``n`` rows, at least one when there are rows."""
    size = min(n, max(1, round(CORRUPTED_SHARE * n)))
    return np.sort(rng.choice(n, size=size, replace=False))


def _replace(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    index = table.schema.get_field_index(name)
    return table.set_column(index, pa.field(name, values.type), values)


def null_keys(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """Null about 1 % of ``customer_id``."""
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[_sample(table.num_rows, rng)] = True
    values = pa.array(table["customer_id"].to_numpy(), type=pa.int64(), mask=mask)
    return _replace(table, "customer_id", values)


def negative_amounts(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """Negate about 1 % of ``amount``."""
    amount = table["amount"].to_numpy().copy()
    rows = _sample(table.num_rows, rng)
    amount[rows] = -amount[rows]
    return _replace(table, "amount", pa.array(amount, type=pa.float64()))


def misdated(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """Move about 1 % of ``tx_datetime`` one day later, then keep the file sorted."""
    stamps = table["tx_datetime"].to_numpy().copy()
    stamps[_sample(table.num_rows, rng)] += np.timedelta64(1, "D")
    table = _replace(table, "tx_datetime", pa.array(stamps, type=pa.timestamp("us")))
    return table.sort_by(SORT_KEYS)


def duplicate_rows(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """Repeat about 1 % of rows, each copy right after its original."""
    rows = np.concatenate([np.arange(table.num_rows), _sample(table.num_rows, rng)])
    return table.take(np.sort(rows, kind="stable"))


def wrong_type(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """Write ``amount`` as strings."""
    return _replace(table, "amount", pc.cast(table["amount"], pa.string()).combine_chunks())


def renamed_column(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """Rename ``amount`` to ``amt``."""
    return table.rename_columns(["amt" if n == "amount" else n for n in table.column_names])


def missing_column(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """Drop ``terminal_id``."""
    return table.drop_columns(["terminal_id"])


# Row-level corruptions first, then column-level ones, so kinds combine on the same day.
CORRUPTORS: dict[BadDataKind, Corruptor] = {
    BadDataKind.NULL_KEYS: null_keys,
    BadDataKind.NEGATIVE_AMOUNTS: negative_amounts,
    BadDataKind.MISDATED: misdated,
    BadDataKind.DUPLICATE_ROWS: duplicate_rows,
    BadDataKind.WRONG_TYPE: wrong_type,
    BadDataKind.RENAMED_COLUMN: renamed_column,
    BadDataKind.MISSING_COLUMN: missing_column,
}


def corrupt_transactions(
    table: pa.Table, kinds: frozenset[BadDataKind], rng: np.random.Generator
) -> pa.Table:
    """Apply the scheduled row- and column-level corruptions in a fixed order."""
    for kind, corrupt in CORRUPTORS.items():
        if kind in kinds:
            table = corrupt(table, rng)
    return table


def split_parts(
    table: pa.Table, kinds: frozenset[BadDataKind], date: dt.date
) -> list[tuple[pa.Table, int, int]]:
    """The day's file parts as (table, landing delay in days, extra minutes), part-0 first."""
    if BadDataKind.EMPTY_DAY in kinds:
        table = table.slice(0, 0)
    parts = [(table, 0, 0)]
    if BadDataKind.LATE_FILE in kinds:
        noon = pa.scalar(dt.datetime.combine(date, dt.time(12)), type=pa.timestamp("us"))
        morning = pc.less(table["tx_datetime"], noon)
        parts = [(table.filter(morning), 0, 0), (table.filter(pc.invert(morning)), 1, 0)]
    if BadDataKind.REPEATED_FILE in kinds:
        parts.append((parts[0][0], 0, REPEATED_FILE_DELAY_MINUTES))
    return parts


def unknown_label_refs(
    labels: pa.Table, rng: np.random.Generator, labelled_date: dt.date, n_transactions: int
) -> pa.Table:
    """Append about 1 % rows whose ids lie past the labelled day's last transaction."""
    size = max(1, round(CORRUPTED_SHARE * labels.num_rows))
    offsets = np.sort(rng.choice(max(100, 10 * size), size=size, replace=False))
    extra = pa.table(
        {
            "transaction_id": pa.array(day_id_base(labelled_date) + n_transactions + offsets),
            "label": pa.array(rng.integers(0, 2, size), type=pa.int8()),
        },
        schema=labels.schema,
    )
    return pa.concat_tables([labels, extra])
