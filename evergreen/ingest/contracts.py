"""Schema contracts of the landing feeds: what a delivered file must look like to be loaded."""

from __future__ import annotations

from dataclasses import dataclass

# DuckDB type names a contract type accepts without loss; anything else breaks the contract.
_COMPATIBLE = {
    "BIGINT": {
        "BIGINT",
        "INTEGER",
        "SMALLINT",
        "TINYINT",
        "UBIGINT",
        "UINTEGER",
        "USMALLINT",
        "UTINYINT",
        "HUGEINT",
    },
    "TINYINT": {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "BOOLEAN"},
    "DOUBLE": {"DOUBLE", "FLOAT", "INTEGER", "BIGINT", "SMALLINT"},
    "TIMESTAMP": {"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"},
    "VARCHAR": {"VARCHAR"},
}


@dataclass(frozen=True)
class Column:
    """One column of a feed's contract."""

    name: str
    type: str
    description: str
    key: bool = False

    def accepts(self, duckdb_type: str) -> bool:
        """Whether a file column of this DuckDB type can be loaded into this column losslessly."""
        base = duckdb_type.upper()
        if base.startswith("DECIMAL"):
            return self.type == "DOUBLE"
        return base in _COMPATIBLE[self.type]


@dataclass(frozen=True)
class FeedContract:
    """A landing feed: its folder name, warehouse table and columns."""

    feed: str
    table: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def keys(self) -> list[str]:
        return [c.name for c in self.columns if c.key]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


TRANSACTIONS = FeedContract(
    feed="transactions",
    table="raw_transactions",
    columns=(
        Column("transaction_id", "BIGINT", "Unique id of the transaction.", key=True),
        Column("tx_datetime", "TIMESTAMP", "When the transaction happened (UTC).", key=True),
        Column("customer_id", "BIGINT", "Card holder.", key=True),
        Column("terminal_id", "BIGINT", "Terminal that took the payment.", key=True),
        Column("amount", "DOUBLE", "Amount, >= 0."),
        Column("region", "VARCHAR", "Customer's region (segment)."),
        Column("channel", "VARCHAR", "pos, web or mobile (segment)."),
        Column("card_type", "VARCHAR", "debit, credit or prepaid (segment)."),
    ),
)

LABELS = FeedContract(
    feed="labels",
    table="raw_labels",
    columns=(
        Column("transaction_id", "BIGINT", "Transaction the label is about.", key=True),
        Column("label", "TINYINT", "1 if the transaction was fraud, else 0.", key=True),
    ),
)

# Columns the warehouse adds to every raw table for provenance.
PROVENANCE_COLUMNS = (
    Column("partition_date", "DATE", "Daily partition the row was loaded into."),
    Column("source_file", "VARCHAR", "Landing file the row came from."),
    Column("ingested_at", "TIMESTAMP", "When the row was loaded (UTC)."),
)

FEEDS = {TRANSACTIONS.feed: TRANSACTIONS, LABELS.feed: LABELS}
