"""A small Dagster job for the Celery fault test (``tests/test_celery_workers.py``): the cluster
profile's executor (``run_executor`` of the environment's settings, as ``definitions.py``
uses), a step slow enough to be killed in the middle, and a step that reads its output.

``write_batch`` marks its start with a file named by its process id (the test kills that
process), writes its output through a temporary name and renames it into place, and
``read_batch`` refuses anything but the whole batch: a half-written file read would fail it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from dagster import job, op

from evergreen.features.tables import temporary_suffix
from evergreen.settings import get_settings
from evergreen.workers import run_executor

ROWS = 50_000


def _folder() -> Path:
    return Path(os.environ["EVERGREEN_FAULT_DIR"])


@op
def write_batch() -> str:
    folder = _folder()
    (folder / f"started-{os.getpid()}").write_text(str(time.time()))
    path = folder / "batch.json"
    partial = path.with_name(f".{path.name}.{temporary_suffix()}")
    with partial.open("w") as out:
        out.write("[")
        for i in range(ROWS):
            out.write(f"{i}," if i < ROWS - 1 else f"{i}]")
            if i % 5_000 == 0:
                out.flush()
                time.sleep(0.2)  # about 2 s in all: time for the test to kill this process
    partial.replace(path)
    return str(path)


@op
def read_batch(path: str) -> int:
    rows = json.loads(Path(path).read_text())
    if rows != list(range(ROWS)):
        raise ValueError(f"half a batch: {len(rows)} rows")
    return len(rows)


@job(executor_def=run_executor(get_settings()))
def fault_job():
    read_batch(write_batch())
