"""The cluster profile across hosts in network namespaces (``tests/netns.py``): PostgreSQL and
Redis listen on the root namespace's address of a private test network, the control plane
(the run's orchestration, launched as a person launches one) runs in the root namespace, and
two worker hosts, each a namespace of its own with an ``evergreen worker`` and its own home,
reach the servers over that network; the hosts have only the shared store in common."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from evergreen.features.customer_spending import CUSTOMER_SPENDING
from evergreen.features.terminal_risk import TERMINAL_RISK
from evergreen.instance import instance_yaml
from evergreen.ports import free_port
from evergreen.settings import EvergreenSettings
from tests.conftest import day
from tests.model_fixtures import CUTOFF, ZONE_DAYS
from tests.netns import PREFIX, namespaces, network_hosts, remove_stale
from tests.servers import PostgresServer, RedisServer
from tests.test_celery_workers import celery_workers

TABLES = (CUSTOMER_SPENDING, TERMINAL_RISK)
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

# The shortened loop's run: the cut-off day's two feature tables (at once: one on each
# host), then the retrain job's assets of that day, through the gate.
LOOP = (
    "customer_spending_features",
    "terminal_risk_features",
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


def _env(settings: EvergreenSettings) -> dict:
    """The environment of one host's Evergreen processes: the same cluster settings, its
    own home and Dagster home."""
    return {
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


@pytest.mark.e2e
def test_the_loop_runs_on_two_worker_hosts_in_network_namespaces(network, tmp_path, pipeline_home):
    """The cut-off day's run, launched in the root namespace: its steps execute on the two
    worker hosts (each named in the run's events, the two feature steps at once, one each),
    over the test network; the gate's decision makes a champion in the ledger on PostgreSQL."""
    from dagster import DagsterInstance

    from evergreen.features.feast_client import apply_definitions
    from evergreen.ingest.partition import ingest_partition
    from evergreen.models.registry import ModelRegistry

    net, redis, postgres = network
    shared = tmp_path / "shared"
    cluster = {
        "profile": "cluster",
        "postgres_url": postgres.create_database("netns_loop"),
        "redis_url": f"redis://{net.gateway}:{redis.port}/0",
        "shared_store": shared,
    }
    control = _home(tmp_path, "control", cluster)
    hosts = {f"w{i}@{h.name}": h for i, h in enumerate(net.hosts, 1)}
    homes = {name: _home(tmp_path, host.name, cluster) for name, host in hosts.items()}
    # The landed history's raw partitions, on the shared store where every host reads them.
    shutil.copytree(pipeline_home.landing_dir, control.landing_dir, dirs_exist_ok=True)
    for i in range(ZONE_DAYS):
        ingest_partition(control, "transactions", day(i))
        ingest_partition(control, "labels", day(i))
    # The history's features are on the shared store already; the definitions in the SQL
    # registry on PostgreSQL.
    shutil.copytree(pipeline_home.features_dir, control.features_dir, dirs_exist_ok=True)
    made_by_the_run = [t.partition_path(control.features_dir, CUTOFF) for t in TABLES]
    for path in made_by_the_run:
        path.unlink()
    apply_definitions(control)

    workers = {name: _env(home) for name, home in homes.items()}
    prefixes = {name: host.exec_prefix() for name, host in hosts.items()}
    with celery_workers(workers, tmp_path, on_hosts=prefixes) as processes:
        for name, process in processes.items():  # each worker in its host's namespace
            assert _namespace_of(process.pid) == hosts[name].namespace
        done = subprocess.run(
            [str(BIN / "dagster"), "asset", "materialize", "-f", "definitions.py"]
            + ["--select", ",".join(LOOP), "--partition", CUTOFF.isoformat()],
            env=_env(control),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]

    with DagsterInstance.from_config(str(control.dagster_home)) as instance:
        (run,) = instance.get_runs()
        assert run.is_success
        ran_on = {}
        logs = instance.all_logs(run.run_id)
        for entry in logs:
            event = entry.dagster_event
            if event and "in celery worker" in (event.message or ""):
                data = event.engine_event_data.metadata
                ran_on[data["step_keys"].value] = data["Celery worker"].value
    assert sorted(ran_on) == sorted(LOOP)  # every step on a worker host, none in the root
    features = {ran_on["customer_spending_features"], ran_on["terminal_risk_features"]}
    assert features == set(hosts)  # the two at once, one on each host
    champion = ModelRegistry(control).champion()
    assert champion is not None and champion.cutoff == CUTOFF.isoformat()
    assert ModelRegistry(control).artifact_path(champion.tag).is_relative_to(shared)
    # What the steps wrote is on the shared store, renamed into place; nothing in any home.
    assert all(path.exists() for path in made_by_the_run)
    assert control.training_set_path(CUTOFF).is_relative_to(shared)
    assert control.training_set_path(CUTOFF).exists()
    assert not list(shared.rglob("*.tmp"))
    for home in (control, *homes.values()):
        for artifacts in ("features", "training_sets", "bentoml"):
            assert not (home.home / artifacts).exists() or not any(
                (home.home / artifacts).rglob("*.parquet")
            )


@pytest.mark.e2e
def test_replicas_on_the_hosts_take_a_canary_through_the_router_without_a_failed_request(
    network, tmp_path, monkeypatch
):
    """The hosts target: the router (Caddy) in the root namespace, a replica on each worker
    host (``bentoml serve`` started through ``ip netns exec``, listening on the host's address,
    dialled there); a canary of a new revision completes, its analysis passing, with every
    request through the router answered."""
    from evergreen.rollout.controller import RolloutController
    from evergreen.rollout.load import LoadLoop, probe_transactions
    from evergreen.rollout.state import read_state
    from evergreen.rollout.strategies import Canary
    from evergreen.rollout.supervisor import Supervisor, SupervisorOptions
    from evergreen.settings import ReplicaHost
    from tests.rollout.conftest import assert_no_failed_requests, fixture_spec, tear_down
    from tests.rollout.test_rollout_e2e import FAST_POLICY

    net, _, _ = network
    hosts = [ReplicaHost(address=h.address, launcher=h.exec_prefix()) for h in net.hosts]
    # The watchdog and every other process the supervisor starts read the same settings.
    monkeypatch.setenv("EVERGREEN_DEPLOY_TARGET", "hosts")
    monkeypatch.setenv("EVERGREEN_DEPLOY_HOSTS", json.dumps([h.model_dump() for h in hosts]))
    monkeypatch.setenv("EVERGREEN_HOME", str(tmp_path / "home"))
    settings = EvergreenSettings(serve_port=free_port()).ensure_dirs()
    supervisor = Supervisor(settings, options=SupervisorOptions(ready_timeout_s=120))
    controller = RolloutController(settings, supervisor, actor="pytest")
    try:
        controller.serve(fixture_spec("v1", replicas=2))
        state = read_state(settings)
        (first,) = state.live()
        placed = {r.host: _namespace_of(r.process.pid) for r in first.replicas}
        assert placed == {h.address: h.namespace for h in net.hosts}  # one on each host
        payloads = probe_transactions(settings, 2000, seed=0)
        load = LoadLoop(supervisor.serving_url(), rate=60, threads=4, payloads=payloads)
        load.start()
        try:
            strategy = Canary(steps=(50, 100), step_s=3.0, drain_s=0.5, analysis=FAST_POLICY)
            result = controller.deploy(fixture_spec("v2", replicas=2), strategy, "hosts canary")
        finally:
            samples = assert_no_failed_requests(load)
        assert result.status == "completed" and all(a["passed"] for a in result.analyses)
        assert {s.model_version for s in samples} == {"v1", "v2"}
        (serving,) = read_state(settings).live()
        assert serving.spec.env["FIXTURE_MODEL_VERSION"] == "v2"
        assert {r.host for r in serving.replicas} == {h.address for h in net.hosts}
    finally:
        tear_down(settings)
