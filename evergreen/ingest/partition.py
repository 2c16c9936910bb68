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
from evergreen.warehouse import append_log, ingest_warehouse, replace_partition


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
        """Rows of the files whose rows could be counted (see ``files_rows_unknown``)."""
        return sum(v.rows or 0 for v in self.verdicts)

    @property
    def rows_quarantined(self) -> int:
        return sum(v.rows or 0 for v in self.rejected)

    @property
    def files_rows_unknown(self) -> list[FileVerdict]:
        """Files that could not be read: their rows are unknown, not zero."""
        return [v for v in self.verdicts if v.rows is None]

    @property
    def bytes_landed(self) -> int:
        return sum(v.file.size_bytes for v in self.verdicts)

    @property
    def bytes_loaded(self) -> int:
        return sum(v.file.size_bytes for v in self.accepted)

    @property
    def bytes_quarantined(self) -> int:
        return sum(v.file.size_bytes for v in self.rejected)

    @property
    def reconciled(self) -> bool:
        """Nothing went missing: every landed file, byte and countable row was either loaded
        or quarantined (an unreadable file counts by file and bytes; its rows are unknown)."""
        files = len(self.verdicts) == len(self.accepted) + len(self.rejected)
        sizes = self.bytes_landed == self.bytes_loaded + self.bytes_quarantined
        return files and sizes and self.rows_landed == self.rows_loaded + self.rows_quarantined

    def reconciliation(self) -> str:
        """The reconciliation in words: files, bytes and rows."""
        unknown = self.files_rows_unknown
        rows = (
            f"rows {self.rows_landed:,} landed = {self.rows_loaded:,} loaded + "
            f"{self.rows_quarantined:,} quarantined"
        )
        if unknown:
            names = ", ".join(v.file.name for v in unknown)
            rows += f", plus rows unknown in {len(unknown)} unreadable file(s) ({names})"
        return (
            f"files {len(self.verdicts)} landed = {len(self.accepted)} loaded + "
            f"{len(self.rejected)} quarantined; bytes {self.bytes_landed:,} = "
            f"{self.bytes_loaded:,} + {self.bytes_quarantined:,}; {rows}"
        )


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
    rows = _parquet_rows(file.path)
    message = f"{file.name} is an exact copy of {original} (same sha256); its rows are loaded once"
    return FileVerdict(file, rows, [Violation("unique_transaction_ids", rows, message, [], False)])


def _parquet_rows(path: Path) -> int | None:
    """Rows a Parquet file's footer declares; None when it has no readable footer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (OSError, pa.ArrowException):
        return None


def _data_version(contract: FeedContract, accepted: list[FileVerdict]) -> str:
    digest = hashlib.sha256(contract.table.encode())
    for v in sorted(accepted, key=lambda v: v.file.sha256):
        digest.update(v.file.sha256.encode())
    return digest.hexdigest()[:16]


def _load(
    conn: duckdb.DuckDBPyConnection,
    settings: EvergreenSettings,
    contract: FeedContract,
    day: dt.date,
    accepted: list[FileVerdict],
    now: dt.datetime,
) -> int:
    """Replace the partition with the accepted files, atomically."""

    def insert(target: str) -> None:
        if not accepted:
            return
        casts = ", ".join(f"CAST({c.name} AS {c.type}) AS {c.name}" for c in contract.columns)
        paths = [str(v.file.path) for v in accepted]
        conn.execute(
            f"INSERT INTO {target} SELECT {casts}, ?::DATE, "
            "parse_filename(filename), ?::TIMESTAMP "
            "FROM read_parquet(?, filename = true)",
            [day, now, paths],
        )

    replace_partition(conn, settings, contract.table, day, insert)
    return conn.execute(
        f"SELECT count(*) FROM {contract.table} WHERE partition_date = ?", [day]
    ).fetchone()[0]


def _log(
    conn: duckdb.DuckDBPyConnection, settings: EvergreenSettings, report: IngestReport
) -> None:
    def insert(target: str) -> None:
        conn.execute(
            f"INSERT INTO {target} (feed, partition_date, ingested_at, files_landed, "
            "files_quarantined, rows_landed, rows_delivered, rows_loaded, rows_quarantined, "
            "data_version, bytes_landed, bytes_quarantined, files_rows_unknown) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                report.bytes_landed,
                report.bytes_quarantined,
                len(report.files_rows_unknown),
            ],
        )

    append_log(conn, settings, report.feed, report.day, insert)


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
    with ingest_warehouse(settings) as conn:
        verdicts = _validate_all(conn, contract, _candidates(settings, feed, day), ctx)
        accepted = [v for v in verdicts if v.accepted]
        loaded = _load(conn, settings, contract, day, accepted, now)
        # An exact copy of a file is not more data delivered: the band judges distinct files.
        landed = sum(
            v.rows or 0 for v in verdicts if v.accepted or any(x.blocking for x in v.violations)
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
        _log(conn, settings, report)
    _settle_files(settings, feed, report)
    return report
