"""Runs on Celery workers (the cluster profile): real ``evergreen worker`` processes (Celery on
a throwaway Redis) execute the steps of real Dagster runs of Evergreen's code location, launched
as a person launches one (``dagster asset materialize``), with the instance on a throwaway
PostgreSQL; a worker process killed mid-step has its step rerun; the local profile keeps
Dagster's default executor. Two worker hosts taking one run's steps, each with its own home and
only the shared store in common, run in network namespaces: ``tests/test_cluster_hosts.py``."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evergreen.instance import instance_yaml
from evergreen.settings import EvergreenSettings
from evergreen.workers import run_executor
from tests.conftest import SMALL, day

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_the_local_profile_keeps_dagsters_default_executor(tmp_path):
    assert run_executor(EvergreenSettings(home=tmp_path)) is None


_EXECUTORS = """
from definitions import defs
print(defs.get_job_def("deploy").executor_def.name, defs.get_job_def("retrain").executor_def.name,
      defs.get_implicit_global_asset_job_def().executor_def.name)
"""


def test_on_the_cluster_a_rollout_runs_on_the_control_plane_and_the_rest_on_workers(tmp_path):
    """The code location on the cluster profile: the deploy job's steps in the run's own
    process (where the daemon or webserver launched it: the router is there), every other job's
    on Celery workers (a ``deployment`` sent to a worker is refused there: the e2e test in
    ``tests/test_cluster_hosts.py``)."""
    env = {
        **os.environ,
        "EVERGREEN_HOME": str(tmp_path / "home"),
        "EVERGREEN_PROFILE": "cluster",
        "EVERGREEN_POSTGRES_URL": "postgresql://nobody@127.0.0.1:1/none",
        "EVERGREEN_REDIS_URL": "redis://127.0.0.1:1/0",
    }
    done = subprocess.run(
        [sys.executable, "-c", _EXECUTORS], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["in_process", "evergreen_celery", "evergreen_celery"]


@pytest.fixture
def cluster_home(tmp_path, clean_zone, redis_server, postgres_db):
    """A home of the cluster profile (its landing zone a copy of the clean zone), its
    environment, and its dagster.yaml on PostgreSQL; Celery on Redis db 2 (apart from the
    online-store tests' databases)."""
    home = tmp_path / "home"
    env = {
        **os.environ,
        "EVERGREEN_HOME": str(home),
        "EVERGREEN_PROFILE": "cluster",
        "EVERGREEN_POSTGRES_URL": postgres_db,
        "EVERGREEN_REDIS_URL": f"redis://{redis_server.host}:{redis_server.port}/2",
        "EVERGREEN_LABEL_DELAY_DAYS": str(SMALL["label_delay_days"]),
        "EVERGREEN_END_DATE": day(12).isoformat(),
        "DAGSTER_HOME": str(home / "dagster"),
    }
    settings = EvergreenSettings(
        home=home,
        profile="cluster",
        postgres_url=postgres_db,
        redis_url=env["EVERGREEN_REDIS_URL"],
        label_delay_days=SMALL["label_delay_days"],
    ).ensure_dirs()
    shutil.copytree(clean_zone, settings.landing_dir, dirs_exist_ok=True)
    (settings.dagster_home / "dagster.yaml").write_text(instance_yaml(settings))
    return settings, env


@contextlib.contextmanager
def celery_workers(
    workers: dict[str, dict], folder: Path, on_hosts: dict[str, list[str]] | None = None
):
    """``evergreen worker --name NAME`` with each name's environment, started at once, until
    each Celery reports ready; stopped (each process group: the prefork children too) at the
    end, even on failure. Their logs: ``folder/<name>.log``. ``on_hosts``: a name's launcher
    prefix (``ip netns exec HOST``, which execs the worker: its pid and group stay)."""
    processes = {}
    try:
        for name, env in workers.items():
            prefix = (on_hosts or {}).get(name, [])
            with (folder / f"{name}.log").open("wb") as out:
                processes[name] = subprocess.Popen(
                    [*prefix, str(BIN / "evergreen"), "worker", "--name", name],
                    env=env,
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        deadline = time.monotonic() + 180
        for name, process in processes.items():
            log = folder / f"{name}.log"
            while b" ready." not in log.read_bytes():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"worker {name} not ready:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
        yield processes
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def test_a_worker_process_killed_mid_step_hands_the_step_on(cluster_home, tmp_path):
    """The process running a step is SIGKILLed in the middle of its write: Celery hands the
    task back to the queue (acks late, rejected when its worker is lost), a worker runs the step
    again, the run succeeds, and the next step read only the whole batch (the killed attempt's
    partial file is left under its temporary name, never read)."""
    from dagster import DagsterInstance

    from tests.cluster_jobs import ROWS

    settings, env = cluster_home
    faults = tmp_path / "faults"
    faults.mkdir()
    env = {**env, "EVERGREEN_FAULT_DIR": str(faults)}
    with celery_workers({"w1@fault": env, "w2@fault": env}, tmp_path):
        with (tmp_path / "run.log").open("wb") as out:
            run = subprocess.Popen(
                [str(BIN / "dagster"), "job", "execute", "-f", "tests/cluster_jobs.py"]
                + ["-j", "fault_job"],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 180
            while not list(faults.glob("started-*")):
                assert run.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the step never started"
                time.sleep(0.05)
            time.sleep(0.5)  # in the middle of its write
            (first,) = faults.glob("started-*")
            killed = int(first.name.removeprefix("started-"))
            os.kill(killed, signal.SIGKILL)
            assert run.wait(300) == 0, (tmp_path / "run.log").read_text()[-3000:]
        finally:
            if run.poll() is None:
                run.kill()
                run.wait(10)

    attempts = sorted(int(p.name.removeprefix("started-")) for p in faults.glob("started-*"))
    assert len(attempts) == 2 and killed in attempts  # the killed attempt, then the one that ran
    assert json.loads((faults / "batch.json").read_text()) == list(range(ROWS))
    leftovers = list(faults.glob(".batch.json.*.tmp"))
    assert [p.name.split(".")[-3] for p in leftovers] == [str(killed)]  # the killed one's only
    with DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        (dagster_run,) = instance.get_runs()
        assert dagster_run.is_success
        on_workers = [
            e.dagster_event.engine_event_data.metadata["Celery worker"].value
            for e in instance.all_logs(dagster_run.run_id)
            if e.dagster_event
            and e.dagster_event.step_key == "write_batch"
            and "in celery worker" in (e.dagster_event.message or "")
        ]
    assert len(on_workers) == 2  # the step was taken twice: the killed attempt and the rerun
