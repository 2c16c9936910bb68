"""The warehouse honours DuckDB's single writer: a second process waits instead of failing."""

import subprocess
import sys
import time

from evergreen.warehouse import connect

HOLD = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
conn.execute("CREATE TABLE IF NOT EXISTS t (x INT)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.close()
"""


def test_a_writer_waits_for_the_lock_held_by_another_process(tmp_path):
    path = tmp_path / "w.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), "2"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    began = time.monotonic()
    with connect(path) as conn:
        waited = time.monotonic() - began
        tables = {r[0] for r in conn.execute("SHOW TABLES").fetchall()}
    holder.wait(timeout=30)
    assert waited > 0.5, "the lock was held, so the open must have waited"
    assert {"t", "raw_transactions", "raw_labels", "ingest_log"} <= tables
