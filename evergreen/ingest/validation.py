"""File-level data-quality rules, evaluated by DuckDB directly on the delivered Parquet files."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb

from evergreen.ingest.contracts import LABELS, FeedContract
from evergreen.ingest.landing import LandedFile

SEEN_IDS = "_seen_ids"  # temp table: ids accepted so far in this partition


@dataclass
class Violation:
    """One rule a file breaks, in words a data engineer can act on."""

    rule: str
    count: int
    message: str
    examples: list[str] = field(default_factory=list)
    blocking: bool = True  # an exact repeated file loses nothing, so it only warns

    def as_dict(self) -> dict:
        return {
            "rule": self.rule,
            "count": self.count,
            "message": self.message,
            "examples": self.examples,
            "blocking": self.blocking,
        }


@dataclass
class FileVerdict:
    """What validation found in one delivered file."""

    file: LandedFile
    rows: int | None  # None: the file cannot be read, so how many rows it holds is unknown
    violations: list[Violation] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.violations

    def reason(self) -> dict:
        """The reason record written beside a quarantined file."""
        return {
            "file": self.file.name,
            "sha256": self.file.sha256,
            "size_bytes": self.file.size_bytes,
            "rows": self.rows,
            "message": "; ".join(v.message for v in self.violations),
            "violations": [v.as_dict() for v in self.violations],
        }


@dataclass(frozen=True)
class PartitionContext:
    """What rules need to know beyond the file: the day and the look-back windows."""

    day: dt.date
    duplicate_lookback_days: int
    label_lookback_days: int


def _fmt(n: int) -> str:
    return f"{n:,}"


def check_contract(
    conn: duckdb.DuckDBPyConnection, contract: FeedContract, file: LandedFile
) -> tuple[int | None, Violation | None]:
    """Row count (None when the file cannot be read) and schema-contract violation (names
    and types) of one file."""
    if file.path.suffix != ".parquet":
        return None, Violation(
            "schema_contract",
            0,
            f"{file.name} is not a Parquet file (only .parquet files are loaded; "
            f"{file.size_bytes:,} bytes, rows unknown); re-deliver it as Parquet",
        )
    try:
        described = conn.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(file.path)])
        found = {row[0]: row[1] for row in described.fetchall()}
        rows = conn.execute("SELECT count(*) FROM read_parquet(?)", [str(file.path)]).fetchone()[0]
    except duckdb.Error as exc:
        first_line = str(exc).splitlines()[0]
        return None, Violation(
            "schema_contract",
            0,
            f"{file.name} is not a readable Parquet file ({first_line}; {file.size_bytes:,} "
            "bytes, rows unknown); re-deliver it",
        )
    problems = []
    missing = [c for c in contract.names if c not in found]
    if missing:
        extra = [c for c in found if c not in contract.names]
        hint = f" (it has unexpected {', '.join(map(repr, extra))}: renamed?)" if extra else ""
        problems.append(f"missing column(s) {', '.join(map(repr, missing))}{hint}")
    for col in contract.columns:
        if col.name in found and not col.accepts(found[col.name]):
            problems.append(
                f"column {col.name!r} is {found[col.name]}, the contract says {col.type}"
            )
    if not problems:
        return rows, None
    message = f"{file.name} breaks the {contract.feed} schema contract: " + "; ".join(problems)
    return rows, Violation("schema_contract", rows, message)


def _row_predicates(contract: FeedContract, day: dt.date) -> dict[str, list[tuple[str, str]]]:
    """Per rule, (SQL predicate that marks a bad row, what it means in words)."""
    null_keys = [(f"{k} IS NULL", f"{k} is null") for k in contract.keys]
    if contract is LABELS:
        ranges = [("label NOT IN (0, 1)", "label is not 0 or 1")]
    else:
        start, end = day.isoformat(), (day + dt.timedelta(days=1)).isoformat()
        ranges = [
            (
                "amount IS NULL OR amount < 0 OR NOT isfinite(amount)",
                "amount is negative, null or not finite",
            ),
            (
                f"tx_datetime < TIMESTAMP '{start}' OR tx_datetime >= TIMESTAMP '{end}'",
                f"tx_datetime falls outside {start}",
            ),
        ]
    return {"non_null_keys": null_keys, "value_ranges": ranges}


def check_rows(
    conn: duckdb.DuckDBPyConnection, contract: FeedContract, file: LandedFile, day: dt.date
) -> list[Violation]:
    """Null keys and out-of-range values, each with a count and example ids."""
    violations = []
    src = f"read_parquet('{file.path}')"
    for rule, predicates in _row_predicates(contract, day).items():
        parts = []
        total = 0
        examples: list[str] = []
        for predicate, words in predicates:
            n = conn.execute(f"SELECT count(*) FROM {src} WHERE {predicate}").fetchone()[0]
            if n:
                total += n
                parts.append(f"{_fmt(n)} rows where {words}")
                ids = conn.execute(
                    f"SELECT transaction_id FROM {src} WHERE {predicate} LIMIT 3"
                ).fetchall()
                examples += [str(i[0]) for i in ids]
        if total:
            message = f"{file.name}: " + ", ".join(parts)
            violations.append(Violation(rule, total, message, examples))
    return violations


def check_duplicates(
    conn: duckdb.DuckDBPyConnection, contract: FeedContract, file: LandedFile, ctx: PartitionContext
) -> Violation | None:
    """Transaction ids repeated inside the file, in earlier files of the day, or in recent days."""
    src = f"read_parquet('{file.path}')"
    within = conn.execute(
        f"SELECT count(transaction_id) - count(DISTINCT transaction_id) FROM {src}"
    ).fetchone()[0]
    earlier = conn.execute(
        f"SELECT count(*) FROM {src} f SEMI JOIN {SEEN_IDS} s USING (transaction_id)"
    ).fetchone()[0]
    lo = ctx.day - dt.timedelta(days=ctx.duplicate_lookback_days)
    recent = conn.execute(
        f"SELECT count(*) FROM {src} f SEMI JOIN (SELECT transaction_id FROM {contract.table} "
        "WHERE partition_date >= ? AND partition_date < ?) w USING (transaction_id)",
        [lo, ctx.day],
    ).fetchone()[0]
    if not (within or earlier or recent):
        return None
    parts = []
    if within:
        parts.append(f"{_fmt(within)} repeated inside the file")
    if earlier:
        parts.append(f"{_fmt(earlier)} already in an earlier file of {ctx.day}")
    if recent:
        parts.append(
            f"{_fmt(recent)} already loaded in the {ctx.duplicate_lookback_days} days before"
        )
    message = f"{file.name}: duplicate transaction ids: " + ", ".join(parts)
    return Violation("unique_transaction_ids", within + earlier + recent, message)


def check_label_references(
    conn: duckdb.DuckDBPyConnection, file: LandedFile, ctx: PartitionContext
) -> Violation | None:
    """Labels that point at no transaction loaded in the look-back window."""
    lo = ctx.day - dt.timedelta(days=ctx.label_lookback_days)
    src = f"read_parquet('{file.path}')"
    unknown = conn.execute(
        f"SELECT transaction_id FROM {src} l ANTI JOIN "
        "(SELECT transaction_id FROM raw_transactions WHERE partition_date BETWEEN ? AND ?) t "
        "USING (transaction_id)",
        [lo, ctx.day],
    ).fetchall()
    if not unknown:
        return None
    message = (
        f"{file.name}: {_fmt(len(unknown))} labels refer to transactions not loaded between "
        f"{lo} and {ctx.day} (unknown ids, or their transactions are not ingested yet)"
    )
    return Violation("known_transactions", len(unknown), message, [str(u[0]) for u in unknown[:3]])
