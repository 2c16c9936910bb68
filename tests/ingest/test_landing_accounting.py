"""Nothing lost at landing, counted honestly: every file in a day's folder is loaded or
quarantined (a ``part-2.csv`` used to be skipped in silence), unreadable files count by file
and bytes with their rows unknown (a truncated Parquet file counted 0 rows), and files outside
any day's folder are reported; on either profile (the cluster's landing zone, quarantine and
raw partitions on its shared store)."""

import json

import pyarrow.parquet as pq
from typer.testing import CliRunner

from evergreen.ingest.contracts import FEEDS
from evergreen.ingest.landing import list_files, partition_dir, stray_files
from evergreen.ingest.partition import ingest_partition
from evergreen.ingest.quarantine import list_quarantined
from evergreen.warehouse import warehouse
from tests.conftest import day, settings_env


def _deliver_bad_files(settings):
    folder = partition_dir(settings.landing_dir, "transactions", day(0))
    good = list_files(settings.landing_dir, "transactions", day(0))[0]
    table = pq.read_table(good)
    csv = folder / "part-2.csv"
    table.to_pandas().head(50).to_csv(csv, index=False)
    data = good.read_bytes()
    (folder / "part-3.parquet").write_bytes(data[: len(data) // 2])  # truncated in transit
    (folder / "part-4.parquet").write_bytes(csv.read_bytes())  # a CSV renamed .parquet
    (folder / ".part-5.parquet.tmp").write_bytes(b"half written")  # a writer's temporary
    (settings.landing_dir / "transactions" / "part-9.parquet").write_bytes(data)  # no day
    return good, {"part-2.csv", "part-3.parquet", "part-4.parquet"}


def test_every_landed_file_is_loaded_quarantined_or_reported(any_profile_settings, monkeypatch):
    settings = any_profile_settings
    good, bad = _deliver_bad_files(settings)
    folder = partition_dir(settings.landing_dir, "transactions", day(0))
    size = sum(p.stat().st_size for p in folder.iterdir() if not p.name.startswith("."))

    report = ingest_partition(settings, "transactions", day(0))

    assert {v.file.name for v in report.accepted} == {good.name}
    assert {v.file.name for v in report.rejected} == bad
    assert {
        q.path.name for q in list_quarantined(settings.quarantine_dir, "transactions", day(0))
    } == bad
    assert {v.file.name for v in report.files_rows_unknown} == bad  # not 0 rows: unknown
    assert report.bytes_landed == size == report.bytes_loaded + report.bytes_quarantined
    assert report.reconciled
    words = report.reconciliation()
    assert "files 4 landed = 1 loaded + 3 quarantined" in words and "rows unknown in 3" in words
    csv = next(v for v in report.rejected if v.file.name == "part-2.csv")
    assert "not a Parquet file" in csv.reason()["message"] and csv.reason()["rows"] is None
    with warehouse(settings, read_only=True) as conn:
        logged = conn.execute(
            "SELECT files_landed, files_quarantined, bytes_landed, files_rows_unknown "
            "FROM ingest_log"
        ).fetchall()
    assert logged == [(4, 3, size, 3)]

    stray = stray_files(settings.landing_dir, tuple(FEEDS))
    assert [p.name for p in stray] == ["part-9.parquet"]
    from evergreen.settings import get_settings

    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        from evergreen.cli import app

        listed = CliRunner().invoke(app, ["quarantine", "list", "--json"])
    finally:
        get_settings.cache_clear()
    assert listed.exit_code == 0, listed.output
    files = {r["file"]: r for r in json.loads(listed.output)}
    assert bad <= set(files) and files["part-2.csv"]["rows"] is None
    assert "transactions/part-9.parquet" in files
    assert "never ingested" in files["transactions/part-9.parquet"]["reason"]
