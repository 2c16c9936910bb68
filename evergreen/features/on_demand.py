"""On-demand (request-time) features of a joined training table, as Feast computes them.

Feast's retrieval job runs a python-mode on-demand view on the whole joined table turned into
Python objects (``PythonTransformation.transform_arrow``: ``udf(table.to_pydict())``): every
column, once per view, and pyarrow builds a tz-aware ``datetime`` at about 5-10 µs, so one
timestamp column costs 5-10 s per million rows. Here the view gets only the columns it reads,
timestamps are built from their epoch values (0.8 µs; UTC-aware, as Feast hands them over
online), and the view runs through its own ``transform_dict``, the call Feast makes online.
The output is assembled as Feast's offline path assembles it (``pa.Table.from_pydict`` of the
outputs), so the table is the same; a test compares it with Feast's own retrieval.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from feast.on_demand_feature_view import OnDemandFeatureView

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_UTC_NAMES = ("UTC", "utc", "Etc/UTC", "+00:00")


def with_on_demand_features(
    table: pa.Table, view: OnDemandFeatureView, wanted: Collection[str]
) -> pa.Table:
    """``table`` with the ``wanted`` outputs of ``view`` appended, in the view's output order."""
    inputs = [f.name for s in view.source_request_sources.values() for f in s.schema]
    inputs += [f.name for p in view.source_feature_view_projections.values() for f in p.features]
    if view.mode == "python" and not view.singleton:
        result = view.transform_dict({name: python_column(table[name]) for name in inputs})
        outputs = pa.Table.from_pydict({n: v for n, v in result.items() if n in wanted})
    else:
        outputs = view.transform_arrow(table.select(inputs), full_feature_names=False)
    for name in outputs.column_names:
        if name in wanted:
            table = table.append_column(name, outputs[name])
    return table


def python_column(column: pa.ChunkedArray) -> list[Any]:
    """The column's values as Python objects, as ``to_pylist`` gives them; a UTC timestamp
    column is built from its epoch microseconds (the same instants, ``datetime.UTC``)."""
    kind = column.type
    utc = pa.types.is_timestamp(kind) and kind.tz in _UTC_NAMES and kind.unit != "ns"
    if not utc:  # nanoseconds come back as pandas Timestamps: leave those to pyarrow
        return column.to_pylist()
    micros = column.cast(pa.timestamp("us", tz=kind.tz)).cast(pa.int64()).to_pylist()
    step = dt.timedelta(microseconds=1)
    return [None if m is None else _EPOCH + m * step for m in micros]
