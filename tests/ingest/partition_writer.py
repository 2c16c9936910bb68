"""A worker host for ``tests/ingest/test_shared_partitions.py``, run as its own process: its
settings come from the environment (its own ``EVERGREEN_HOME``, the cluster profile, the shared
store), as an ``evergreen worker``'s do.

``materialize FEED DAY BARRIER N``: wait until N hosts are at the barrier (a folder where each
leaves a file), then materialize that raw partition in a real Dagster run; it prints the
asset's concurrency pool (none on the cluster profile: nothing serializes the hosts).
``rewrite DAY ROUNDS``: re-ingest one transactions partition ROUNDS times, its delivery switched
each time between ``part-0.parquet`` and the half of it in ``half.parquet`` (kept out of the
landing folder), so that a reader sees the file replaced under it.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path


def _barrier(folder: Path, hosts: int) -> None:
    (folder / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 120
    while len(list(folder.glob("ready-*"))) < hosts:
        if time.monotonic() > deadline:
            raise SystemExit("the other hosts never came to the barrier")
        time.sleep(0.005)


def materialize(feed: str, day: dt.date, barrier: Path, hosts: int) -> None:
    from dagster import materialize as run

    from assets.raw_data import raw_labels, raw_transactions
    from evergreen.resources import EvergreenResource

    asset = raw_transactions if feed == "transactions" else raw_labels
    resources = {"evergreen": EvergreenResource(home=os.environ["EVERGREEN_HOME"])}
    _barrier(barrier, hosts)
    result = run([asset], partition_key=day.isoformat(), resources=resources)
    print(f"materialized {feed} {day} (pool {asset.op.pool}): {result.success}", flush=True)


def rewrite(day: dt.date, rounds: int) -> None:
    from evergreen.ingest.landing import partition_dir
    from evergreen.ingest.partition import ingest_partition
    from evergreen.settings import get_settings

    settings = get_settings()
    folder = partition_dir(settings.landing_dir, "transactions", day)
    full, half = folder / "part-0.parquet", folder.parent / "half.parquet"
    whole = folder.parent / "whole.parquet"
    shutil.copy(full, whole)
    for i in range(rounds):
        shutil.copy(half if i % 2 else whole, full)
        report = ingest_partition(settings, "transactions", day)
        print(f"round {i}: {report.rows_loaded} rows", flush=True)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "materialize":
        materialize(args[0], dt.date.fromisoformat(args[1]), Path(args[2]), int(args[3]))
    else:
        rewrite(dt.date.fromisoformat(args[0]), int(args[1]))
