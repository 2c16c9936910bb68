"""Raw partitions on the cluster profile's shared store: two hosts (processes with homes of
their own, only the shared store in common) write different partitions at the same moment
with no lock between them, each partition one file renamed into place, and every reader sees
the union as the raw table; a partition written again replaces its file whole."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from evergreen.ingest.contracts import TRANSACTIONS
from evergreen.ingest.landing import list_files, partition_dir
from evergreen.settings import EvergreenSettings
from evergreen.warehouse import partition_versions, warehouse
from tests.conftest import cluster_settings, day, settings_env

ROOT = Path(__file__).resolve().parents[2]


def _host_env(settings: EvergreenSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVERGREEN_", "DAGSTER_"))}
    return env | settings_env(settings)


def _host(settings: EvergreenSettings, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.ingest.partition_writer", *args],
        env=_host_env(settings),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def shared(tmp_path, clean_zone) -> Path:
    """A shared store whose landing zone is a copy of the clean zone."""
    store = tmp_path / "shared"
    landing = cluster_settings(tmp_path / "control", store).landing_dir
    shutil.copytree(clean_zone, landing, dirs_exist_ok=True)
    return store


def _landed(settings: EvergreenSettings, *days) -> pa.Table:
    files = [f for d in days for f in list_files(settings.landing_dir, "transactions", d)]
    return pa.concat_tables(pq.read_table(f) for f in files).sort_by("transaction_id")


def test_two_hosts_write_two_raw_partitions_at_once_and_read_the_union(tmp_path, shared):
    hosts = [cluster_settings(tmp_path / f"host{i}", shared) for i in (1, 2)]
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    days = (day(0), day(1))
    runs = [
        _host(host, "materialize", "transactions", d.isoformat(), str(barrier), "2")
        for host, d in zip(hosts, days, strict=True)
    ]
    outputs = [run.communicate(timeout=240)[0] for run in runs]
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0 and "(pool None): True" in output, output[-3000:]

    reader = cluster_settings(tmp_path / "reader", shared)  # a third host reads both
    names = ", ".join(TRANSACTIONS.names)
    with warehouse(reader, read_only=True) as conn:
        union = conn.sql(f"SELECT {names} FROM raw_transactions ORDER BY transaction_id")
        union = union.to_arrow_table()
        logged = conn.execute(
            "SELECT partition_date, rows_loaded FROM ingest_log ORDER BY 1"
        ).fetchall()
    landed = _landed(reader, *days)
    assert union.num_rows == landed.num_rows > 0
    assert union.to_pylist() == landed.select(TRANSACTIONS.names).to_pylist()
    per_day = [len(_landed(reader, d)) for d in days]
    assert logged == list(zip(days, per_day, strict=True))
    raw = reader.raw_dir
    written = sorted(p for p in raw.rglob("*") if p.is_file())
    parts = [partition_versions(raw, TRANSACTIONS.table, d) for d in days]
    assert [len(versions) for versions in parts] == [1, 1]  # each one file, from its one host
    assert [p for p in written if "ingest_log" not in p.parts] == [v[0] for v in parts]
    assert not [p for p in written if p.name.endswith(".tmp")]  # all renamed into place
    for host in hosts:  # no host's own warehouse took any of it
        assert not host.warehouse_path.exists()


def _deliver_two_sizes(settings: EvergreenSettings, d, copies: int) -> tuple[int, int]:
    """Replace the day's delivery with a larger one (``copies`` of it, fresh ids) and keep half
    of it beside the folder: the writer switches between them. Returns both sizes."""
    (path,) = list_files(settings.landing_dir, "transactions", d)
    day_rows = pq.read_table(path)
    offsets = [pc.add(day_rows["transaction_id"], k * 10_000_000) for k in range(copies)]
    big = pa.concat_tables(day_rows.set_column(0, "transaction_id", ids) for ids in offsets)
    pq.write_table(big, path)
    half = big.slice(0, big.num_rows // 2)
    pq.write_table(
        half, partition_dir(settings.landing_dir, "transactions", d).parent / "half.parquet"
    )
    return big.num_rows, half.num_rows


def _partition_rows(conn, d) -> tuple[int, int]:
    return conn.execute(
        "SELECT count(*), count(DISTINCT transaction_id) FROM raw_transactions "
        "WHERE partition_date = ?",
        [d],
    ).fetchone()


def test_a_partition_written_again_is_read_whole_old_or_new(tmp_path, shared):
    """One host writes a large partition again and again (two sizes in turn) while another
    reads it: each read, on a fresh connection or one held from the start, sees the old
    version or the new one, whole; the held connection keeps reading the version it began
    with."""
    writer = cluster_settings(tmp_path / "writer", shared)
    sizes = _deliver_two_sizes(writer, day(2), copies=100)
    rounds = 6
    run = _host(writer, "rewrite", day(2).isoformat(), str(rounds))
    reader = cluster_settings(tmp_path / "reader", shared)
    fresh: list[tuple[int, int]] = []
    held: list[tuple[int, int]] = []
    try:
        deadline = time.monotonic() + 120
        while not partition_versions(reader.raw_dir, TRANSACTIONS.table, day(2)):
            assert run.poll() is None, run.stdout.read()
            assert time.monotonic() < deadline, "the partition's file never appeared"
            time.sleep(0.01)
        other = cluster_settings(tmp_path / "reader2", shared)  # DuckDB: one mode per file
        with warehouse(other, read_only=True) as kept:
            while run.poll() is None:
                with warehouse(reader, read_only=True) as conn:
                    fresh.append(_partition_rows(conn, day(2)))
                held.append(_partition_rows(kept, day(2)))
                time.sleep(0.02)  # leave the writer a core
    finally:
        if run.poll() is None:
            run.kill()
        output = run.communicate(timeout=60)[0]
    assert run.returncode == 0, output[-3000:]
    assert output.count(" rows") == rounds
    assert len(fresh) > rounds  # read while it was written again and again
    whole = {(n, n) for n in sizes}
    assert set(fresh) <= whole, "a read saw a partition neither old nor new"
    assert len(set(fresh)) == 2  # and saw it replaced
    assert set(held) == {held[0]} <= whole  # one snapshot from start to end
    versions = partition_versions(reader.raw_dir, TRANSACTIONS.table, day(2))
    assert len(versions) == rounds  # none dropped: superseded for less than the grace


def test_a_version_is_dropped_only_once_superseded_for_the_grace(tmp_path, shared):
    from evergreen.ingest.partition import ingest_partition
    from evergreen.warehouse import VERSION_GRACE_S

    host = cluster_settings(tmp_path / "host", shared)
    for _ in range(3):
        ingest_partition(host, "transactions", day(0))
    first, second, third = partition_versions(host.raw_dir, TRANSACTIONS.table, day(0))
    long_ago = time.time() - VERSION_GRACE_S - 60
    os.utime(second, (long_ago, long_ago))  # the first was superseded longer ago than the grace

    report = ingest_partition(host, "transactions", day(0))

    versions = partition_versions(host.raw_dir, TRANSACTIONS.table, day(0))
    assert versions == [second, third, versions[-1]] and not first.exists()
    with warehouse(host, read_only=True) as conn:
        assert _partition_rows(conn, day(0))[0] == report.rows_loaded > 0
