"""The cluster profile's daemon on a real PostgreSQL: a run that fails is re-launched by the
daemon's run retries and succeeds, and the daemon's sensors evaluate again after PostgreSQL
restarts under it. A real ``dagster-daemon`` over a small code location
(``tests/cluster_daemon_jobs.py``), its instance Evergreen's cluster dagster.yaml."""

from __future__ import annotations

import os
import time
from pathlib import Path

import yaml

from evergreen.instance import instance_yaml
from evergreen.settings import EvergreenSettings
from tests.rollout.conftest import wait_for
from tests.ui.conftest import _start, _stop

ROOT = Path(__file__).resolve().parents[1]


def _ticks(folder: Path) -> list[float]:
    return sorted(float(p.name.removeprefix("tick-")) for p in folder.glob("tick-*"))


def test_a_failed_run_is_retried_and_sensors_tick_across_a_postgres_restart(
    fault_postgres, tmp_path
):
    from dagster import DagsterInstance, DagsterRunStatus

    url = fault_postgres.create_database("daemon")
    settings = EvergreenSettings(
        home=tmp_path / "home", profile="cluster", postgres_url=url,
        redis_url="redis://127.0.0.1:1/0",  # no Celery: the job runs in its run's process
    ).ensure_dirs()  # fmt: skip
    dagster_home, faults = tmp_path / "dagster", tmp_path / "faults"
    dagster_home.mkdir()
    faults.mkdir()
    (dagster_home / "dagster.yaml").write_text(instance_yaml(settings))
    workspace = tmp_path / "workspace.yaml"
    location = {
        "relative_path": str(ROOT / "tests/cluster_daemon_jobs.py"),
        "working_directory": str(ROOT),
    }
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_file": location}]}))
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "EVERGREEN_FAULT_DIR": str(faults)}
    log = tmp_path / "daemon.log"
    daemon = _start(["dagster-daemon", "run", "-w", str(workspace)], env, log)
    try:
        with DagsterInstance.from_config(str(dagster_home)) as instance:

            def runs():
                assert daemon.poll() is None, log.read_text()[-3000:]
                return instance.get_runs()

            wait_for(
                lambda: any(r.status == DagsterRunStatus.SUCCESS for r in runs()),
                240,
                "the retried run to succeed",
            )
            first, retried = sorted(runs(), key=lambda r: r.tags.get("dagster/retry_number", "0"))
            before = len(_ticks(faults))
            restarted_at = time.time()
            fault_postgres.stop("fast")
            time.sleep(1.0)
            fault_postgres.start()
            wait_for(
                lambda: [t for t in _ticks(faults) if t > restarted_at + 1.0],
                60,
                "the sensor to evaluate after the restart",
            )
            assert daemon.poll() is None, log.read_text()[-3000:]
    finally:
        _stop(daemon)
    assert first.status == DagsterRunStatus.FAILURE
    assert retried.tags["dagster/parent_run_id"] == first.run_id
    assert (
        retried.tags["dagster/retry_number"] == "1" and retried.status == DagsterRunStatus.SUCCESS
    )
    assert before >= 1
