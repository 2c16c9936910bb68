"""Daily feature tables on disk: one Parquet file per partition, in the layout Feast reads.

A table computed at the end of day D describes the data up to and including D; its rows carry
``event_timestamp`` = D+1 00:00 UTC (the moment they become known) and ``created_timestamp`` =
when they were computed. A transaction during day D+1 therefore joins to features of data up to
the end of day D, never to its own day. Files live at
``<features_dir>/<table>/date=D/part-0.parquet``; Feast reads them all through one glob
(DuckDB's ``read_parquet``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

WINDOWS = (1, 7, 30)
EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created_timestamp"
UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class FeatureTable:
    """A daily feature table: its name, entity, join key and feature columns (name -> type)."""

    name: str
    entity: str
    join_key: str
    features: dict[str, pa.DataType]
    description: str

    def directory(self, features_dir: Path) -> Path:
        return features_dir / self.name

    def partition_path(self, features_dir: Path, day: dt.date) -> Path:
        return self.directory(features_dir) / f"date={day.isoformat()}" / "part-0.parquet"

    def source_glob(self, features_dir: Path) -> str:
        """The path Feast's FileSource reads: every partition's file."""
        return str(self.directory(features_dir).resolve() / "date=*" / "*.parquet")

    @property
    def schema(self) -> pa.Schema:
        fields = [pa.field(self.join_key, pa.int64())]
        fields += [pa.field(n, t) for n, t in self.features.items()]
        fields += [
            pa.field(EVENT_TIMESTAMP, UTC_TIMESTAMP),
            pa.field(CREATED_TIMESTAMP, UTC_TIMESTAMP),
        ]
        return pa.schema(fields)


def known_at(day: dt.date) -> dt.datetime:
    """When the features of day ``day`` become known: the next midnight, UTC."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def with_timestamps(
    table: FeatureTable, rows: pa.Table, day: dt.date, created_at: dt.datetime
) -> pa.Table:
    """Add the event and created timestamps and cast to the table's schema."""
    n = rows.num_rows
    rows = rows.append_column(EVENT_TIMESTAMP, pa.array([known_at(day)] * n, UTC_TIMESTAMP))
    rows = rows.append_column(CREATED_TIMESTAMP, pa.array([created_at] * n, UTC_TIMESTAMP))
    return rows.select(table.schema.names).cast(table.schema)


def write_partition(table: FeatureTable, rows: pa.Table, features_dir: Path, day: dt.date) -> Path:
    """Replace one partition's file."""
    return write_table(rows, table.partition_path(features_dir, day))


def write_table(rows: pa.Table, path: Path, exclusive: bool = False) -> Path:
    """Write Parquet atomically: a reader sees the old file or the new one, never half a file.
    ``exclusive``: never replace a file at ``path`` (``FileExistsError``), so that a name once
    written always holds the same bytes (a reader opening it twice reads one file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{temporary_suffix()}")
    pq.write_table(rows, tmp, compression="zstd")
    if not exclusive:
        os.replace(tmp, path)
        return path
    try:
        os.link(tmp, path)  # fails if the name exists: atomic, also on NFS
    finally:
        tmp.unlink()
    return path


def temporary_suffix() -> str:
    """A temporary file name's suffix no other writer has: this host, process and a random
    part (on a shared store two hosts' processes can have the same pid)."""
    return f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"


def fingerprint(table: pa.Table) -> str:
    """A hash of a table's values, in row order: equal data gives an equal fingerprint."""
    import pandas as pd  # here, not at import: every Dagster process loads this module

    rows = pd.util.hash_pandas_object(table.to_pandas(), index=False)
    digest = hashlib.sha256(",".join(table.column_names).encode())
    digest.update(rows.to_numpy().tobytes())
    return digest.hexdigest()[:16]
