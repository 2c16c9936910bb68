"""The ``live_predictions`` table's name and columns: what the prediction log's lines load
into. Apart from ``evergreen.serving.live_predictions`` (which loads it) so that the warehouse,
which defines the table's view on the cluster profile, needs nothing else of serving."""

from __future__ import annotations

TABLE = "live_predictions"
LOG_COLUMNS = {
    "request_id": "VARCHAR",
    "predicted_at": "TIMESTAMP",
    "model_version": "VARCHAR",
    "transaction_id": "BIGINT",
    "customer_id": "BIGINT",
    "terminal_id": "BIGINT",
    "amount": "DOUBLE",
    "tx_datetime": "TIMESTAMP",
    "region": "VARCHAR",
    "channel": "VARCHAR",
    "card_type": "VARCHAR",
    "features": "JSON",
    "features_missing": "VARCHAR[]",
    "fraud_probability": "DOUBLE",
    "threshold": "DOUBLE",
    "decision": "BOOLEAN",
    "replica": "VARCHAR",
}
REQUIRED = ("request_id", "model_version", "transaction_id", "tx_datetime", "fraud_probability")


def table_ddl(name: str = TABLE, temp: bool = False) -> str:
    """The table's DDL (``temp``: a temporary table of the same columns named ``name``)."""
    kind = "TEMP TABLE" if temp else "TABLE"
    return (
        f"CREATE {kind} IF NOT EXISTS {name} (\n    partition_date DATE NOT NULL,\n    "
        + ",\n    ".join(f"{column} {type_}" for column, type_ in LOG_COLUMNS.items())
        + ",\n    source_file VARCHAR NOT NULL\n)"
    )
