"""A small code location for the daemon fault test (``tests/test_daemon_faults.py``): a job
whose one op fails its first attempt on purpose (the daemon's run retries re-launch it), and a
sensor that ticks every second, marking each evaluation with a file, and requests that job
once.

Everything happens in ``EVERGREEN_FAULT_DIR``: ``failed-once`` (the first attempt was made) and
``tick-<time>`` (one per evaluation).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from dagster import (
    DefaultSensorStatus,
    Definitions,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    in_process_executor,
    job,
    op,
    sensor,
)


def _folder() -> Path:
    return Path(os.environ["EVERGREEN_FAULT_DIR"])


@op
def fails_once() -> None:
    marker = _folder() / "failed-once"
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        raise RuntimeError("the first attempt fails on purpose")


@job(executor_def=in_process_executor)  # no step process to start: the test stays short
def flaky_job():
    fails_once()


@sensor(job=flaky_job, minimum_interval_seconds=1, default_status=DefaultSensorStatus.RUNNING)
def ticking(context: SensorEvaluationContext):
    (_folder() / f"tick-{time.time():.3f}").touch()
    if context.cursor:
        return SkipReason("the job was requested already")
    context.update_cursor("requested")
    return RunRequest(run_key="once")


defs = Definitions(jobs=[flaky_job], sensors=[ticking])
