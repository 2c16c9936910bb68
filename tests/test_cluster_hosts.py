"""The cluster profile across hosts in network namespaces (``tests/netns.py``): PostgreSQL and
Redis listen on the root namespace's address of a private test network; the control plane
(``dagster-webserver``, ``dagster-daemon`` and the router) runs in the root namespace; two
worker hosts, each a namespace of its own with an ``evergreen worker``, its own home and a
bento replica, reach the servers over that network; the hosts have only the shared store in
common."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from dagster import RunsFilter

from evergreen.features.customer_spending import CUSTOMER_SPENDING
from evergreen.features.terminal_risk import TERMINAL_RISK
from evergreen.instance import instance_yaml
from evergreen.ports import free_port
from evergreen.settings import EvergreenSettings
from tests.conftest import day
from tests.model_fixtures import CUTOFF, ZONE_DAYS
from tests.netns import PREFIX, namespaces, network_hosts, remove_stale
from tests.rollout.conftest import wait_for
from tests.servers import PostgresServer, RedisServer
from tests.test_celery_workers import celery_workers
from tests.ui.conftest import _graphql, _start, _stop, _stop_sensors, _wait_for_location

TABLES = (CUSTOMER_SPENDING, TERMINAL_RISK)
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

# The shortened loop's run: the cut-off day's raw partitions (landed, ingested from the
# shared store's landing zone), its two feature tables (at once: one on each host), the day's
# online features and request-time state on Redis, then the retrain job's assets of that day,
# through the gate.
LOOP = (
    "raw_transactions",
    "raw_labels",
    "customer_spending_features",
    "terminal_risk_features",
    "online_features",
    "transaction_state",
    "training_set",
    "candidate_model",
    "evaluation_report",
    "promotion_decision",
)


def _ours(pid: int) -> list[str]:
    """This machine's namespaces and links named for process ``pid``."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    names = namespaces() + [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
    return [n for n in names if n.startswith(f"{PREFIX}{pid}")]


def test_the_test_network_is_torn_down_even_when_a_test_fails():
    """Hosts made, a process left running on one, then a failure: nothing of the network is
    left, the process included; a stale namespace of a dead run is removed by the next."""
    with pytest.raises(RuntimeError, match="the test failed"), network_hosts(2) as net:
        assert len(_ours(os.getpid())) == 5  # the bridge, two namespaces, two veths
        (host, other) = net.hosts
        sleeper = subprocess.Popen([*host.exec_prefix(), "sleep", "600"])
        reach = [*host.exec_prefix(), "bash", "-c", f"echo > /dev/tcp/{other.address}/1"]
        refused = subprocess.run(reach, capture_output=True, text=True)
        assert "refused" in refused.stderr  # the other host answered: on one network
        raise RuntimeError("the test failed")
    assert _ours(os.getpid()) == []
    assert sleeper.wait(10) == -9

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid no process has now, as a killed run's
    stale = f"{PREFIX}{dead.pid}h1"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    assert stale in remove_stale() and stale not in namespaces()


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """Two hosts on a test network, PostgreSQL and Redis on its root-side address; all torn
    down at the end, even on failure."""
    with network_hosts(2) as net:
        redis = RedisServer(tmp_path_factory.mktemp("netns-redis"), free_port(), host=net.gateway)
        folder = Path(tempfile.mkdtemp(prefix="evergreen-pg-"))  # postgres must read it
        postgres = PostgresServer(folder, free_port(), host=net.gateway)
        try:
            yield net, redis.start(), postgres.start()
        finally:
            redis.stop()
            postgres.stop("immediate")
            shutil.rmtree(folder, ignore_errors=True)


def _namespace_of(pid: int) -> str:
    """The named network namespace a process runs in (``ip netns identify``)."""
    done = subprocess.run(["ip", "netns", "identify", str(pid)], capture_output=True, text=True)
    return done.stdout.strip()


def _env(settings: EvergreenSettings, **more: str) -> dict:
    """The environment of one host's Evergreen processes: the same cluster settings, its
    own home and Dagster home (``more``: further settings of this host)."""
    return {
        **more,
        **os.environ,
        "EVERGREEN_HOME": str(settings.home),
        "EVERGREEN_PROFILE": "cluster",
        "EVERGREEN_POSTGRES_URL": settings.postgres_url,
        "EVERGREEN_REDIS_URL": settings.redis_url,
        "EVERGREEN_SHARED_STORE": str(settings.shared_store),
        "EVERGREEN_END_DATE": day(ZONE_DAYS).isoformat(),
        "DAGSTER_HOME": str(settings.dagster_home),
    }


def _home(base: Path, name: str, cluster: dict) -> EvergreenSettings:
    """A host's home (its own warehouse file: the raw partitions are read from the shared
    store) and its own dagster.yaml on the cluster's PostgreSQL."""
    settings = EvergreenSettings(home=base / name, **cluster).ensure_dirs()
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    (settings.dagster_home / "dagster.yaml").write_text(instance_yaml(settings))
    return settings


_LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}"""


def _launch(url: str, *, job: str = "__ASSET_JOB", assets=(), config=None, tags=None) -> str:
    """Launch a run through the webserver, as the UI's launch button does; its run id."""
    selector = {"repositoryLocationName": "evergreen", "repositoryName": "__repository__"}
    selector["jobName"] = job
    if assets:
        selector["assetSelection"] = [{"path": [key]} for key in assets]
    params = {
        "selector": selector,
        "runConfigData": config or {},
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
    }
    done = _graphql(url, _LAUNCH_RUN, {"params": params})["launchRun"]
    assert done["__typename"] == "LaunchRunSuccess", done
    return done["run"]["runId"]


def _ended(instance, run_id: str, timeout_s: float = 600):
    """The run once it has ended (the daemon dequeues and launches it)."""
    from dagster import DagsterRunStatus

    ended = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    wait_for(lambda: instance.get_run_by_id(run_id).status in ended, timeout_s, f"run {run_id}")
    return instance.get_run_by_id(run_id)


def _failures(instance, run_id: str) -> list[str]:
    """The messages of a run's failure events, each step's with its error."""
    found = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event and event.is_failure:
            error = event.step_failure_data.error if event.is_step_failure else None
            found.append(f"{event.message}: {error.message if error else ''}")
    return found


def _finished(instance, run_id: str, ui: list[Path], timeout_s: float = 600):
    """The run once it has ended; fails with the servers' logs when it did not succeed."""
    run = _ended(instance, run_id, timeout_s)
    if not run.is_success:
        errors = _failures(instance, run_id)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in ui if p.exists())
        raise AssertionError(f"run {run_id} {run.status.value}: {errors}\n{logs}")
    return run


def _steps_on_workers(instance, run_id: str) -> dict[str, str]:
    """Each step of a run executed by a Celery worker, and that worker's name."""
    ran_on = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event and "in celery worker" in (event.message or ""):
            data = event.engine_event_data.metadata
            ran_on[data["step_keys"].value] = data["Celery worker"].value
    return ran_on


def _steps_started(instance, run_id: str) -> set[str]:
    """Every step a run started, wherever it ran."""
    return {
        e.dagster_event.step_key
        for e in instance.all_logs(run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "STEP_START"
    }


@contextlib.contextmanager
def _control_plane(env: dict, folder: Path):
    """``dagster-webserver`` and ``dagster-daemon`` in the root namespace on the cluster's
    instance; every sensor stopped but the deploy sensor (the test launches the loop's runs
    itself, as a person would in the UI); stopped at the end, even on failure."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    workspace = ["-w", str(ROOT / "workspace.yaml")]
    logs = [folder / "webserver.log", folder / "daemon.log"]
    serve = ["dagster-webserver", *workspace, "-h", "127.0.0.1", "-p", str(port)]
    web = _start(serve, env, logs[0])
    daemon = None
    try:
        sensors = _wait_for_location(url, web, logs[0])
        _stop_sensors(url, [s for s in sensors if s["name"] != "deploy_sensor"])
        daemon = _start(["dagster-daemon", "run", *workspace], env, logs[1])
        yield url, logs
    finally:
        _stop(*[p for p in (daemon, web) if p is not None])


@pytest.mark.e2e
def test_the_loop_runs_on_the_cluster_across_hosts(network, tmp_path, pipeline_home):
    """The shortened loop on the cluster profile, launched through the webserver: its steps
    execute on the two worker hosts (each named in the run's events, both hosts taking
    steps; the raw partitions written by them) over the test network, and the gate makes a
    champion in the ledger on PostgreSQL; the daemon's deploy sensor then rolls the
    champion's bento out from the control plane, a replica on each host behind the router in
    the root namespace; a canary of a new revision of it completes under load with every
    request through the router answered."""
    from dagster import DagsterInstance

    from evergreen.features.feast_client import apply_definitions
    from evergreen.ingest.partition import ingest_partition
    from evergreen.models.registry import ModelRegistry
    from evergreen.rollout.load import LoadLoop, probe_transactions
    from evergreen.rollout.state import read_state
    from evergreen.rollout.supervisor import Supervisor
    from evergreen.settings import ReplicaHost
    from tests.rollout.conftest import assert_no_failed_requests, tear_down

    net, redis, postgres = network
    shared = tmp_path / "shared"
    cluster = {
        "profile": "cluster",
        "postgres_url": postgres.create_database("netns_loop"),
        "redis_url": f"redis://{net.gateway}:{redis.port}/0",
        "shared_store": shared,
    }
    control = _home(tmp_path, "control", {**cluster, "serve_port": free_port()})
    hosts = {f"w{i}@{h.name}": h for i, h in enumerate(net.hosts, 1)}
    homes = {name: _home(tmp_path, host.name, cluster) for name, host in hosts.items()}
    replicas = [  # a replica on each worker host, its BentoML home in that host's home
        ReplicaHost(address=h.address, launcher=h.exec_prefix(), home=str(homes[name].home))
        for name, h in hosts.items()
    ]
    # The landed history's raw partitions, on the shared store where every host reads them;
    # the cut-off day's are the run's to write.
    shutil.copytree(pipeline_home.landing_dir, control.landing_dir, dirs_exist_ok=True)
    for i in range(ZONE_DAYS - 1):
        ingest_partition(control, "transactions", day(i))
        ingest_partition(control, "labels", day(i))
    # The history's features are on the shared store already; the definitions in the SQL
    # registry on PostgreSQL.
    shutil.copytree(pipeline_home.features_dir, control.features_dir, dirs_exist_ok=True)
    made_by_the_run = [t.partition_path(control.features_dir, CUTOFF) for t in TABLES]
    for path in made_by_the_run:
        path.unlink()
    apply_definitions(control)

    # The control plane's settings: the replicas go on the worker hosts (the hosts target);
    # the infra validation's latency budget is wide, as the machine is shared.
    control_env = _env(
        control,
        EVERGREEN_SERVE_PORT=str(control.serve_port),
        EVERGREEN_DEPLOY_TARGET="hosts",
        EVERGREEN_DEPLOY_HOSTS=json.dumps([h.model_dump() for h in replicas]),
        EVERGREEN_SERVE_P99_BUDGET_MS="2000",
    )
    served = control.model_copy(
        update={"deploy_target": "hosts", "deploy_hosts": replicas, "serve_p99_budget_ms": 2000}
    )
    workers = {name: _env(home) for name, home in homes.items()}
    prefixes = {name: host.exec_prefix() for name, host in hosts.items()}
    try:
        with (
            celery_workers(workers, tmp_path, on_hosts=prefixes) as processes,
            _control_plane(control_env, tmp_path) as (url, ui),
            DagsterInstance.from_config(str(control.dagster_home)) as instance,
        ):
            for name, process in processes.items():  # each worker in its host's namespace
                assert _namespace_of(process.pid) == hosts[name].namespace
            loop_run = _launch(url, assets=LOOP, tags={"dagster/partition": CUTOFF.isoformat()})
            _finished(instance, loop_run, ui)
            ran_on = _steps_on_workers(instance, loop_run)
            assert sorted(ran_on) == sorted(LOOP)  # every step on a worker host, none here
            assert set(ran_on) == _steps_started(instance, loop_run)
            assert set(ran_on.values()) == set(hosts)  # both hosts took the run's steps
            champion = ModelRegistry(control).champion()
            assert champion is not None and champion.cutoff == CUTOFF.isoformat()

            # The deploy sensor sees the new champion and requests the deploy job; its steps
            # run on the control plane, the replicas on the worker hosts.
            wait_for(lambda: instance.get_runs(RunsFilter(job_name="deploy")), 180, "deploy")
            (first_deploy,) = instance.get_runs(RunsFilter(job_name="deploy"))
            _finished(instance, first_deploy.run_id, ui)
            assert _steps_on_workers(instance, first_deploy.run_id) == {}
            (first,) = read_state(served).live()
            assert first.spec.model_tag == champion.tag and first.spec.bento_tag  # its bento
            placed = {r.host: _namespace_of(r.process.pid) for r in first.replicas}
            assert placed == {h.address: h.namespace for h in net.hosts}  # one on each host

            # A canary of a new revision of the champion's bento (an operator's change of
            # its environment), launched from the UI, under load through the router.
            payloads = probe_transactions(served, 2000, seed=0)
            load = LoadLoop(Supervisor(served).serving_url(), rate=40, threads=4, payloads=payloads)
            load.start()
            try:
                deployment = {
                    "strategy": "canary",
                    "canary_steps": [50, 100],
                    "step_seconds": 3.0,
                    "drain_seconds": 0.5,
                    "env": {"EVERGREEN_REVISION_NOTE": "canary"},
                }
                canary_run = _launch(
                    url, job="deploy", config={"ops": {"deployment": {"config": deployment}}}
                )
                _finished(instance, canary_run, ui)
            finally:
                samples = assert_no_failed_requests(load)
            assert len(samples) > 100
            (serving,) = read_state(served).live()
            assert serving.spec.env["EVERGREEN_REVISION_NOTE"] == "canary"
            assert serving.spec.bento_tag == first.spec.bento_tag  # the same bento, new revision
            assert {r.host for r in serving.replicas} == {h.address for h in net.hosts}
            for home in homes.values():  # each replica's own folder on its own host
                assert list(home.serving_dir.glob(f"{serving.name}/replica-*/bentoml"))
            assert not list(control.serving_dir.glob("*/replica-*/bentoml"))
            (rolled,) = [
                e.dagster_event.step_materialization_data.materialization.metadata
                for e in instance.all_logs(canary_run)
                if e.dagster_event and e.dagster_event.is_step_materialization
                and e.dagster_event.asset_key.to_user_string() == "deployment"
            ]  # fmt: skip
            assert (rolled["kind"].value, rolled["status"].value) == ("canary", "completed")

            # Materializing deployment by hand (the UI's asset job) sends it to a worker host,
            # which refuses to start a router there; the canary's revision still serves.
            no_retry = {"dagster/max_retries": "0"}  # refused each time: one attempt will do
            stray = _ended(instance, _launch(url, assets=["deployment"], tags=no_retry))
            assert not stray.is_success
            refused = _steps_on_workers(instance, stray.run_id)
            assert list(refused) == ["deployment"] and refused["deployment"] in hosts
            assert any("launch the deploy job" in m for m in _failures(instance, stray.run_id))
            assert read_state(served).live()[0].name == serving.name
    finally:
        tear_down(served)

    assert ModelRegistry(control).artifact_path(champion.tag).is_relative_to(shared)
    # What the steps wrote is on the shared store, renamed into place; nothing in any home.
    assert all(path.exists() for path in made_by_the_run)
    for table in ("raw_transactions", "raw_labels"):  # the cut-off day's, by a worker host
        assert list((shared / "raw" / table / f"date={CUTOFF.isoformat()}").glob("part-*"))
    assert control.training_set_path(CUTOFF).is_relative_to(shared)
    assert control.training_set_path(CUTOFF).exists()
    assert not list(shared.rglob("*.tmp"))
    # The replicas on both hosts logged their predictions to the store, a file per process.
    logged = list(control.predictions_dir.glob("date=*/*.jsonl"))
    assert control.predictions_dir.is_relative_to(shared) and len(logged) >= 2
    for home in (control, *homes.values()):
        for artifacts in ("raw", "features", "training_sets", "bentoml", "predictions"):
            assert not any(p.is_file() for p in (home.home / artifacts).rglob("*")), artifacts
