"""Ingest one day of one feed: validate each delivered file, load the good, quarantine the rest."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from evergreen.ingest import quarantine as qz
from evergreen.ingest.contracts import FEEDS, LABELS, FeedContract
from evergreen.ingest.landing import LandedFile, list_files
from evergreen.ingest.validation import (
    SEEN_IDS,
    FileVerdict,
    PartitionContext,
    Violation,
    check_contract,
    check_duplicates,
    check_label_references,
    check_rows,
)
from evergreen.ingest.verify import label_share, verify_loaded
from evergreen.ingest.volume import VolumeVerdict, volume_verdict
from evergreen.settings import EvergreenSettings
from evergreen.warehouse import connect


@dataclass
class IngestReport:
    """Everything one partition's ingest found and did."""

    feed: str
    day: dt.date
    ingested_at: dt.datetime
    verdicts: list[FileVerdict]
    rows_loaded: int
    data_version: str
    volume: VolumeVerdict
    loaded_checks: dict[str, int] = field(default_factory=dict)  # post-load re-verification
    label_share: float | None = None

    @property
    def accepted(self) -> list[FileVerdict]:
        return [v for v in self.verdicts if v.accepted]

    @property
    def rejected(self) -> list[FileVerdict]:
        return [v for v in self.verdicts if not v.accepted]

    @property
    def rows_landed(self) -> int:
        return sum(v.rows for v in self.verdicts)

    @property
    def rows_quarantined(self) -> int:
        return sum(v.rows for v in self.rejected)

    @property
    def reconciled(self) -> bool:
        return self.rows_landed == self.rows_loaded + self.rows_quarantined


def _candidates(settings: EvergreenSettings, feed: str, day: dt.date) -> list[Path]:
    """Landed files plus files of the day still in quarantine; a re-delivery supersedes its copy."""
    landed = {p.name: p for p in list_files(settings.landing_dir, feed, day)}
    held = {}
    for q in qz.list_quarantined(settings.quarantine_dir, feed, day):
        if q.path.name in landed:
            qz.supersede(q.path)
        else:
            held[q.path.name] = q.path
    return [p for _, p in sorted({**held, **landed}.items())]


def _validate(
    conn: duckdb.DuckDBPyConnection, contract: FeedContract, file: LandedFile, ctx: PartitionContext
) -> FileVerdict:
    rows, broken = check_contract(conn, contract, file)
    verdict = FileVerdict(file, rows)
    if broken:
        verdict.violations.append(broken)
        return verdict
    verdict.violations += check_rows(conn, contract, file, ctx.day)
    duplicate = check_duplicates(conn, contract, file, ctx)
    if duplicate:
        verdict.violations.append(duplicate)
    if contract is LABELS:
        unknown = check_label_references(conn, file, ctx)
        if unknown:
            verdict.violations.append(unknown)
    return verdict


def _validate_all(
    conn: duckdb.DuckDBPyConnection,
    contract: FeedContract,
    files: list[Path],
    ctx: PartitionContext,
) -> list[FileVerdict]:
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {SEEN_IDS} (transaction_id BIGINT)")
    verdicts: list[FileVerdict] = []
    accepted_by_sha: dict[str, str] = {}
    for path in files:
        file = LandedFile.read(path)
        copy_of = accepted_by_sha.get(file.sha256)
        if copy_of:
            verdicts.append(_exact_copy(file, copy_of))
            continue
        verdict = _validate(conn, contract, file, ctx)
        if verdict.accepted:
            accepted_by_sha[file.sha256] = file.name
            conn.execute(
                f"INSERT INTO {SEEN_IDS} SELECT transaction_id FROM read_parquet(?)", [str(path)]
            )
        verdicts.append(verdict)
    return verdicts


def _exact_copy(file: LandedFile, original: str) -> FileVerdict:
    rows = int(_parquet_rows(file.path))
    message = f"{file.name} is an exact copy of {original} (same sha256); its rows are loaded once"
    return FileVerdict(file, rows, [Violation("unique_transaction_ids", rows, message, [], False)])


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def _data_version(contract: FeedContract, accepted: list[FileVerdict]) -> str:
    digest = hashlib.sha256(contract.table.encode())
    for v in sorted(accepted, key=lambda v: v.file.sha256):
        digest.update(v.file.sha256.encode())
    return digest.hexdigest()[:16]


def _load(
    conn: duckdb.DuckDBPyConnection,
    contract: FeedContract,
    day: dt.date,
    accepted: list[FileVerdict],
    now: dt.datetime,
) -> int:
    """Replace the partition with the accepted files, atomically."""
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(f"DELETE FROM {contract.table} WHERE partition_date = ?", [day])
        if accepted:
            casts = ", ".join(f"CAST({c.name} AS {c.type}) AS {c.name}" for c in contract.columns)
            paths = [str(v.file.path) for v in accepted]
            conn.execute(
                f"INSERT INTO {contract.table} SELECT {casts}, ?::DATE, "
                "parse_filename(filename), ?::TIMESTAMP "
                "FROM read_parquet(?, filename = true)",
                [day, now, paths],
            )
        loaded = conn.execute(
            f"SELECT count(*) FROM {contract.table} WHERE partition_date = ?", [day]
        ).fetchone()[0]
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    return loaded


def _log(conn: duckdb.DuckDBPyConnection, report: IngestReport) -> None:
    conn.execute(
        "INSERT INTO ingest_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            report.feed,
            report.day,
            report.ingested_at,
            len(report.verdicts),
            len(report.rejected),
            report.rows_landed,
            report.volume.rows,
            report.rows_loaded,
            report.rows_quarantined,
            report.data_version,
        ],
    )


def _settle_files(settings: EvergreenSettings, feed: str, report: IngestReport) -> None:
    """Move rejected files into quarantine and files that now pass back to landing."""
    for v in report.verdicts:
        in_quarantine = v.file.path.is_relative_to(settings.quarantine_dir)
        if v.accepted and in_quarantine:
            qz.release(v.file.path, settings.landing_dir, feed, report.day)
        elif not v.accepted:
            qz.quarantine(v.file.path, settings.quarantine_dir, feed, report.day, v.reason())


def ingest_partition(settings: EvergreenSettings, feed: str, day: dt.date) -> IngestReport:
    """Validate, load and quarantine one feed's files of one day; returns what happened."""
    contract = FEEDS[feed]
    ctx = PartitionContext(day, settings.duplicate_lookback_days, settings.label_lookback_days)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with connect(settings.warehouse_path) as conn:
        verdicts = _validate_all(conn, contract, _candidates(settings, feed, day), ctx)
        accepted = [v for v in verdicts if v.accepted]
        loaded = _load(conn, contract, day, accepted, now)
        # An exact copy of a file is not more data delivered: the band judges distinct files.
        landed = sum(
            v.rows for v in verdicts if v.accepted or any(x.blocking for x in v.violations)
        )
        report = IngestReport(
            feed,
            day,
            now,
            verdicts,
            loaded,
            _data_version(contract, accepted),
            volume_verdict(conn, feed, day, landed, settings),
            loaded_checks=verify_loaded(conn, contract, day),
            label_share=label_share(conn, day) if contract is LABELS else None,
        )
        _log(conn, report)
    _settle_files(settings, feed, report)
    return report
