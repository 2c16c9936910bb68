"""The rollout's parts on their own: metrics parsing, analysis verdicts, router weights and
configuration (checked by Caddy itself), the ledger's append-only tables, locks, strategies,
Kubernetes manifests (schema-validated) and container commands."""

import datetime as dt
import json
import sqlite3
import subprocess
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from evergreen.rollout import caddy
from evergreen.rollout.analysis import AnalysisPolicy, RevisionWindow, compare_scores, judge, psi
from evergreen.rollout.container import ContainerEngineError, ContainerTarget, engine_available
from evergreen.rollout.evidence import AnalysisWindow
from evergreen.rollout.kubernetes import (
    deployment_manifests,
    render_manifests,
    rollout_manifests,
    validate_manifests,
)
from evergreen.rollout.metrics import EndpointStats, histogram_quantile, parse_metrics
from evergreen.rollout.records import insert_rollout, insert_step, rollout_ledger
from evergreen.rollout.revisions import RevisionSpec
from evergreen.rollout.state import (
    READY,
    ReplicaState,
    RevisionState,
    RolloutBusyError,
    ServingState,
    rollout_lock,
)
from evergreen.rollout.strategies import Canary
from evergreen.rollout.supervisor import replica_weights
from evergreen.rollout.targets import target_named
from tests.rollout.conftest import fixture_spec, rollout_settings

METRICS = """\
# TYPE evergreen_request_total counter
evergreen_request_total{endpoint="/predict",http_response_code="200",service_name="f"} 90.0
evergreen_request_total{endpoint="/predict",http_response_code="500",service_name="f"} 10.0
evergreen_request_total{endpoint="/readyz",http_response_code="200",service_name="f"} 7.0
# TYPE evergreen_request_duration_seconds histogram
evergreen_request_duration_seconds_bucket{endpoint="/predict",code="200",le="0.01"} 50.0
evergreen_request_duration_seconds_bucket{endpoint="/predict",code="200",le="0.1"} 90.0
evergreen_request_duration_seconds_bucket{endpoint="/predict",code="200",le="+Inf"} 90.0
evergreen_request_duration_seconds_bucket{endpoint="/predict",code="500",le="0.01"} 0.0
evergreen_request_duration_seconds_bucket{endpoint="/predict",code="500",le="0.1"} 0.0
evergreen_request_duration_seconds_bucket{endpoint="/predict",code="500",le="+Inf"} 10.0
evergreen_request_duration_seconds_count{endpoint="/predict",http_response_code="200"} 90.0
evergreen_request_duration_seconds_sum{endpoint="/predict",http_response_code="200"} 2.0
# TYPE evergreen_request_in_progress gauge
evergreen_request_in_progress{endpoint="/predict",service_name="f"} 3.0
"""


def test_metrics_of_the_predict_endpoint_only():
    stats = parse_metrics(METRICS)
    assert (stats.requests, stats.errors, stats.in_progress) == (100.0, 10.0, 3.0)
    assert stats.buckets == {0.01: 50.0, 0.1: 90.0, float("inf"): 100.0}
    assert stats.error_rate == pytest.approx(0.1)
    # The 50th request is the last one of the first bucket; the 99th is in +Inf: its lower bound.
    assert stats.quantile_ms(0.5) == pytest.approx(10.0)
    assert stats.quantile_ms(0.7) == pytest.approx(10 + 90 * (70 - 50) / 40)
    assert stats.quantile_ms(0.99) == pytest.approx(100.0)


def test_window_deltas_and_counter_restarts():
    before = EndpointStats(100, 10, {0.1: 100.0})
    after = EndpointStats(150, 10, {0.1: 150.0})
    assert after.since(before).requests == 50 and after.since(before).errors == 0
    restarted = EndpointStats(20, 1, {0.1: 20.0})
    assert restarted.since(before) == restarted  # counters went down: the replica restarted
    assert np.isnan(histogram_quantile({}, 0.99))


def window(requests=100, errors=0, p99=20.0, version="new"):
    return RevisionWindow("r", version, requests, errors, p99)


def test_verdicts_on_errors_latency_and_scores():
    policy = AnalysisPolicy(max_error_rate=0.01, max_p99_ms=100, p99_factor=2)
    assert judge(window(), window(version="old"), None, policy, 3).passed
    erring = judge(window(errors=5), window(version="old"), None, policy, 3)
    assert not erring.passed and "error rate 5.0%" in erring.reasons[0]
    # Slow for everyone (the machine) is not the canary's fault; slow on its own is.
    assert judge(window(p99=300), window(p99=200, version="old"), None, policy, 3).passed
    slow = judge(window(p99=300), window(p99=20, version="old"), None, policy, 3)
    assert not slow.passed and "p99 300 ms" in slow.reasons[0]
    few = judge(window(requests=3), None, None, policy, 3)
    assert few.passed and "only 3 canary requests" in few.notes[0]


def test_score_comparison_fails_a_shifted_model_only():
    rng = np.random.default_rng(0)
    baseline = rng.beta(2, 5, 400)
    policy = AnalysisPolicy()
    same = compare_scores(list(rng.beta(2, 5, 60)), list(baseline), policy, "prediction log")
    shifted = compare_scores(list(rng.beta(2, 5, 60) + 0.5), list(baseline), policy, "probe")
    # Another sound model: a different shape, the same calibrated mean (a retrain does this).
    reshaped = compare_scores(list(rng.beta(0.5, 1.25, 60)), list(baseline), policy, "probe")
    assert same.passed and not shifted.passed
    assert reshaped.ks_statistic > policy.max_ks_statistic and reshaped.passed
    assert shifted.ks_statistic > 0.5 and shifted.psi > 1.0 and same.psi < shifted.psi
    verdict = judge(window(), window(version="old"), shifted, policy, 3)
    assert not verdict.passed and "score distribution differs from old" in verdict.reasons[0]
    assert psi(baseline, baseline) == pytest.approx(0.0)


def test_only_payments_scored_on_all_their_features_judge_a_canarys_scores(tmp_path):
    """A window of heartbeat payments (cards no real payment has: batch features missing) says
    how two models extrapolate, not how they score: no verdict on scores, and the note says
    why. The same shift on payments with their features fails the canary."""
    settings = rollout_settings(tmp_path / "home")
    window = AnalysisWindow(settings, "r2", "r1", AnalysisPolicy())
    window.tail.mark()
    revisions = {
        "r2": SimpleNamespace(model_version="new", replicas=[]),
        "r1": SimpleNamespace(model_version="old", replicas=[]),
    }
    rng = np.random.default_rng(0)
    log = settings.predictions_dir / "date=2018-04-20" / "replica.jsonl"
    log.parent.mkdir(parents=True)

    def append(version: str, scores, missing: list[str]) -> None:
        at = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat()
        with log.open("a") as handle:
            for score in scores:
                record = {"predicted_at": at, "model_version": version, "customer_id": 1}
                record |= {"fraud_probability": float(score), "features_missing": missing}
                handle.write(json.dumps(record) + "\n")

    heartbeat = ["customer_spending", "terminal_risk"]
    append("new", rng.beta(2, 5, 100) / 10, heartbeat)  # 3x apart, KS ~1
    append("old", rng.beta(2, 5, 100) / 3, heartbeat)
    why = window._scores(revisions)
    assert isinstance(why, str) and "0 payment(s) with all their features" in why
    verdict = judge(RevisionWindow("r2", "new", 100, 0, 5.0), None, why, AnalysisPolicy(), 3)
    assert verdict.passed and why in verdict.notes

    append("new", rng.beta(2, 5, 60) / 10, [])
    append("old", rng.beta(2, 5, 60) / 3, [])
    compared = window._scores(revisions)
    assert compared.source == "prediction log" and compared.canary_n == 60
    assert not compared.passed


def test_the_readme_states_the_score_gate_the_code_applies():
    """The README said the score gate fails on KS alone; the code also requires the means to be
    more than ``max_mean_ratio`` apart. Each of the three conditions must be written there."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    start = readme.index("Canary analysis (`analysis.py`)")
    gate = " ".join(readme[start : readme.index("\n\n", start)].split())
    policy = AnalysisPolicy()
    for stated in (
        f"significant (p < {policy.ks_alpha:g})",
        f"large (> {policy.max_ks_statistic:g})",
        f"mean scores are more than {policy.max_mean_ratio:g}x apart",
    ):
        assert stated in gate, (stated, gate)


def revision(name, weight, ready=(True,), phase=READY):
    spec = RevisionSpec(serve_target="s:S", model_version=name, source="x")
    base = 9000 + 10 * sum(map(ord, name))
    replicas = [
        ReplicaState(index=i, port=base + i, log="", started_at="", ready=r)
        for i, r in enumerate(ready)
    ]
    return RevisionState(name, spec, "process", "", weight, phase=phase, replicas=replicas)


def test_router_weights_are_small_integers_split_over_ready_replicas():
    state = ServingState(revisions={"old": revision("old", 90, (True, True)),
                                    "new": revision("new", 10)})  # fmt: skip
    assert [u.weight for u in replica_weights(state)] == [9, 9, 2]
    state.revisions["old"].replicas[1].ready = False  # dead: its share goes to its sibling
    assert [u.weight for u in replica_weights(state)] == [9, 0, 1]
    state.revisions["old"].replicas[0].ready = False  # the weighted revision is all down
    assert [u.weight for u in replica_weights(state)] == [0, 0, 1]
    state.revisions["new"].weight, state.revisions["old"].weight = 0, 100
    assert [u.weight for u in replica_weights(state)] == [0, 0, 1]  # serve, not fail


def caddy_accepts(config: dict, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    cmd = [str(caddy.caddy_binary()), "validate", "--config", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_caddy_validates_the_router_and_edge_configurations(tmp_path):
    policy = caddy.RouterPolicy()
    upstreams = [caddy.Upstream("127.0.0.1:9001", 9), caddy.Upstream("127.0.0.1:9002", 1)]
    socket = str(tmp_path / "router.admin.sock")
    router = caddy.router_config(socket, "127.0.0.1:18080", upstreams, policy)
    handler = router["apps"]["http"]["servers"]["router"]["routes"][0]["handle"][0]
    assert handler["load_balancing"]["selection_policy"] == {
        "policy": "weighted_round_robin",
        "weights": [9, 1],
    }
    assert handler["health_checks"]["active"]["uri"] == "/readyz"
    assert router["admin"]["listen"] == f"unix/{socket}|0600"  # owner-only, no TCP port
    edge = caddy.edge_config(socket, "127.0.0.1:8080", "127.0.0.1:18080", policy)
    empty = caddy.router_config(socket, "127.0.0.1:18080", [], policy)
    for config in (router, edge, empty):
        done = caddy_accepts(config, tmp_path)
        assert done.returncode == 0, done.stderr[-500:]
    broken = json.loads(json.dumps(router).replace('"weighted_round_robin"', '"weighted_rr"'))
    assert caddy_accepts(broken, tmp_path).returncode != 0


def test_rollout_tables_are_append_only(tmp_path):
    settings = rollout_settings(tmp_path / "home")
    with rollout_ledger(settings) as conn:
        rollout_id = insert_rollout(
            conn, kind="canary", target="process", revision="r0001", model_version="v1",
            source="x", from_revision=None, from_model_version=None, config={}, actor="t",
            reason="test",
        )  # fmt: skip
        insert_step(conn, rollout_id, "started", {"r0001": 0}, "ok", "")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE rollout_steps SET outcome = 'failed'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM rollouts")


def test_one_rollout_at_a_time(tmp_path):
    settings = rollout_settings(tmp_path / "home")
    with (
        rollout_lock(settings),
        pytest.raises(RolloutBusyError, match="in progress"),
        rollout_lock(settings, wait_s=0.2),
    ):
        pass
    with rollout_lock(settings):  # released
        pass


@pytest.mark.parametrize("steps", [(10, 50), (50, 10, 100), (0, 100), ()])
def test_canary_steps_must_rise_to_100(steps):
    with pytest.raises(ValueError, match="rise strictly"):
        Canary(steps=steps)


def test_kubernetes_manifests_validate_against_their_schemas(tmp_path):
    spec = fixture_spec("fraud_detector:abc")
    deployment, service = deployment_manifests(spec, "registry.local/fraud_detection:abc")
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > 10
    rollout = rollout_manifests(spec, "registry.local/fraud_detection:abc")
    steps = rollout[0]["spec"]["strategy"]["canary"]["steps"]
    assert [s["setWeight"] for s in steps if "setWeight" in s] == [10, 50, 100]
    assert validate_manifests([deployment, service, *rollout]) == []
    # A misspelt field fails each validator (Kubernetes' strict schemas; the vendored CRD).
    deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavialable"] = 0
    rollout[0]["spec"]["strategy"]["canary"]["steps"].append({"setWieght": 20})
    service["spec"]["ports"][0]["port"] = "eighty"
    errors = validate_manifests([deployment, service, rollout[0]])
    assert len(errors) == 3 and "maxUnavialable" in errors[0] and "setWieght" in errors[2]
    paths = render_manifests(spec, "img:1", tmp_path / "k8s")
    assert sorted(paths) == ["deployment", "rollout"] and paths["rollout"].read_text()


def test_the_rollout_analyses_in_the_background_and_validates(tmp_path):
    from evergreen.rollout.kubernetes import ClusterOptions, analysis_queries

    options = ClusterOptions(p99_budget_ms=80)
    rollout, template, *_ = rollout_manifests(fixture_spec("fraud_detector:abc"), "img:1", options)
    analysis = rollout["spec"]["strategy"]["canary"]["analysis"]
    assert analysis["templates"] == [{"templateName": template["metadata"]["name"]}]
    hashes = {a["name"]: a["valueFrom"]["podTemplateHashValue"] for a in analysis["args"]}
    assert hashes == {"canary-hash": "Latest", "stable-hash": "Stable"}
    metrics = {m["name"]: m for m in template["spec"]["metrics"]}
    assert sorted(metrics) == ["error-rate", "p99-latency", "score-shift"]
    assert metrics["p99-latency"]["successCondition"].endswith("<= 0.08")
    assert all(m["failureLimit"] == 0 for m in metrics.values())  # one failure rolls back
    assert "{{args.stable-hash}}" in analysis_queries(options)["score-shift"][0]
    assert validate_manifests([rollout, template]) == []
    # The vendored CRD schemas are closed: a misspelt metric field or provider fails.
    template["spec"]["metrics"][0]["sucessCondition"] = "true"
    template["spec"]["metrics"][1]["provider"] = {"prometheos": {}}
    rollout["spec"]["strategy"]["canary"]["analysis"]["startStep"] = 1
    errors = validate_manifests([rollout, template])
    assert len(errors) == 2 and "startStep" in errors[0] and "AnalysisTemplate" in errors[1]


def test_container_target_commands(tmp_path):
    settings = rollout_settings(tmp_path / "home")
    target = ContainerTarget(image="localhost/fraud_detection:abc", engine="podman")
    spec = fixture_spec("fraud_detector:abc")
    run = target.run_command(settings, "r0003", spec, 1, 41234)
    assert run[:3] == ["podman", "run", "--detach"]
    assert run[run.index("--network") + 1] == "host"
    assert "BENTOML_PORT=41234" in run and "BENTOML_HOST=127.0.0.1" in run
    assert "FIXTURE_MODEL_VERSION=fraud_detector:abc" in run and run[-1] == target.image
    home = str(settings.home)
    assert run[run.index("--volume") + 1] == f"{home}:{home}" and f"EVERGREEN_HOME={home}" in run
    owner = settings.home.stat()
    assert run[run.index("--user") + 1] == f"{owner.st_uid}:{owner.st_gid}"  # the home's owner
    again = target.run_command(settings, "r0003", spec, 1, 41234)
    assert again[again.index("--name") + 1] != run[run.index("--name") + 1]  # a start, a name
    assert target_named(target.name) == target
    by_bento = ContainerTarget(engine="podman")
    assert target_named(by_bento.name) == by_bento
    with pytest.raises(ContainerEngineError, match="not a bento"):
        by_bento.run_command(settings, "r0004", spec, 0, 41235)  # a service folder has no image
    replica = ReplicaState(0, 41234, "", "", container="evergreen-r0003-1")
    assert target.stop_command(replica, 15) == [
        "podman", "stop", "--time", "15", "evergreen-r0003-1"
    ]  # fmt: skip
    usable, why = engine_available()
    assert isinstance(usable, bool) and why  # here: a docker client without an engine


def _tcp_ports(pid: int) -> set[int]:
    import psutil

    connections = psutil.Process(pid).net_connections("tcp")
    return {c.laddr.port for c in connections if c.status == "LISTEN"}


def test_caddys_admin_apis_are_owner_only_sockets_and_drift_is_restored(tmp_path):
    """A local process could PATCH the router's weights through its TCP admin port unnoticed;
    now the admin API is a 0600 socket, and the watchdog's pass restores a changed config and
    records the drift in the ledger."""
    import stat

    from evergreen.rollout.records import routing_changes
    from evergreen.rollout.state import read_state
    from evergreen.rollout.supervisor import Supervisor
    from tests.rollout.conftest import tear_down

    settings = rollout_settings(tmp_path / "home")
    supervisor = Supervisor(settings)
    try:
        supervisor.ensure_router()
        state = read_state(settings)
        for ref in (state.router, state.edge):
            mode = Path(ref.admin).stat().st_mode
            assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600, oct(mode)
            assert stat.S_IMODE(Path(ref.admin).parent.stat().st_mode) == 0o700
            # TCP: what it serves, and its Prometheus metrics (a read-only handler, no admin).
            port_of = lambda address: int(address.rsplit(":", 1)[1])  # noqa: E731
            assert _tcp_ports(ref.process.pid) == {port_of(ref.listen), port_of(ref.metrics)}
            before = caddy.current_config(ref)
            posted = httpx.post(f"http://{ref.metrics}/load", json={"apps": {}}, timeout=5)
            assert "caddy_http_request" in posted.text or "# HELP" in posted.text
            assert caddy.current_config(ref) == before
        assert supervisor.reconcile() == []  # nothing drifted yet

        # Someone with access to the socket sends all traffic to their own upstream.
        hijack = {"handler": "reverse_proxy", "upstreams": [{"dial": "127.0.0.1:9"}]}
        with state.router.client(5.0) as client:
            path = "/config/apps/http/servers/router/routes/0/handle/0"
            assert client.patch(path, json=hijack).status_code == 200

        actions = supervisor.reconcile()

        assert actions == ["router drift restored (it routed 127.0.0.1:9 1)"]
        live = caddy.current_config(state.router)
        assert live["apps"]["http"]["servers"]["router"]["routes"][0]["handle"][0] == (
            caddy.NOTHING_SERVES
        )
        with rollout_ledger(settings) as conn:
            causes = [c.cause for c in routing_changes(conn)]
        assert any("drift found" in c and "127.0.0.1:9" in c for c in causes), causes
        assert "router drift restored: the state's weights again" in causes
        assert supervisor.reconcile() == []
    finally:
        tear_down(settings)


def test_the_edges_drift_is_restored_and_a_caddy_whose_admin_moved_is_replaced(tmp_path):
    """Only the router's routes were compared: a PATCH of the edge (every request to another
    address) or an admin listener moved to a TCP port (open to every local process again)
    went unnoticed by the watchdog."""
    import contextlib
    import stat

    import httpx

    from evergreen.ports import free_port
    from evergreen.rollout.processes import is_alive
    from evergreen.rollout.records import routing_changes
    from evergreen.rollout.state import read_state
    from evergreen.rollout.status import serving_status
    from evergreen.rollout.supervisor import Supervisor
    from tests.rollout.conftest import tear_down, wait_for

    settings = rollout_settings(tmp_path / "home")
    supervisor = Supervisor(settings)
    try:
        supervisor.ensure_router()
        state = read_state(settings)
        hijack = {"handler": "reverse_proxy", "upstreams": [{"dial": "127.0.0.1:9"}]}
        with state.edge.client(5.0) as client:
            path = "/config/apps/http/servers/edge/routes/0/handle/0"
            assert client.patch(path, json=hijack).status_code == 200

        [drift] = serving_status(settings)["drift"]  # `evergreen status` says so meanwhile
        assert drift.startswith("edge: its live configuration differs") and "127.0.0.1:9" in drift

        assert supervisor.reconcile() == ["edge drift restored (it routed 127.0.0.1:9 1)"]
        assert serving_status(settings)["drift"] == []
        live = caddy.current_config(state.edge)
        upstreams = live["apps"]["http"]["servers"]["edge"]["routes"][0]["handle"][0]["upstreams"]
        assert upstreams == [{"dial": state.router.listen}]
        assert supervisor.reconcile() == []

        # The router's admin API moved to a TCP port through its own socket.
        port = free_port()
        with contextlib.suppress(httpx.HTTPError), state.router.client(5.0) as client:
            client.patch("/config/admin/listen", json=f"127.0.0.1:{port}")
        wait_for(lambda: caddy.admin_gone(state.router), 15, "the router's socket to go")
        assert port in _tcp_ports(state.router.process.pid)
        assert serving_status(settings)["drift"] == [
            f"router: nothing listens on its admin socket {state.router.admin}"
        ]

        actions = supervisor.reconcile()

        assert actions[0].startswith("router replaced: nothing listens on its admin socket")
        router = read_state(settings).router
        assert not is_alive(state.router.process) and is_alive(router.process)
        assert stat.S_IMODE(Path(router.admin).stat().st_mode) == 0o600
        assert port not in _tcp_ports(router.process.pid)
        [(_, intended), _] = supervisor.intended_configs(read_state(settings))
        assert caddy.current_config(router) == intended
        with rollout_ledger(settings) as conn:
            causes = [c.cause for c in routing_changes(conn)]
        assert any("edge drift found" in c and "127.0.0.1:9" in c for c in causes), causes
        assert any(c.startswith("router replaced") for c in causes), causes
        assert supervisor.reconcile() == []
    finally:
        tear_down(settings)


def test_the_hosts_target_spreads_replicas_over_its_hosts_and_names_a_missing_setting(
    monkeypatch,
):
    """Replica i on host i modulo their number, started through the host's launcher and
    listening on its address; no hosts: an error naming the setting, before anything starts;
    a revision's state read back finds the hosts in the settings; an older state file's
    replica (no host recorded) is dialled on loopback, as before."""
    from evergreen.rollout.targets import HostsTarget
    from evergreen.settings import EvergreenSettings, ReplicaHost

    hosts = [
        ReplicaHost(address="10.9.0.11", launcher=["ip", "netns", "exec", "a"]),
        ReplicaHost(address="10.9.0.12", launcher=["ip", "netns", "exec", "b"]),
    ]
    target = HostsTarget(hosts)
    assert [target.place(i).address for i in range(3)] == ["10.9.0.11", "10.9.0.12", "10.9.0.11"]
    command = target.command(fixture_spec("v1"), 8123, target.place(1))
    assert command[:4] == ["ip", "netns", "exec", "b"]
    assert command[command.index("--host") + 1] == "10.9.0.12"
    with pytest.raises(ValueError, match="EVERGREEN_DEPLOY_HOSTS"):
        HostsTarget([]).place(0)

    monkeypatch.setenv("EVERGREEN_DEPLOY_HOSTS", json.dumps([h.model_dump() for h in hosts]))
    assert target_named("hosts", EvergreenSettings()).hosts == hosts
    old = ReplicaState.from_dict({"index": 0, "port": 9000, "log": "x", "started_at": "t"})
    placed = ReplicaState.from_dict({**old.__dict__, "host": "10.9.0.12", "process": None})
    assert (old.dial, placed.dial) == ("127.0.0.1:9000", "10.9.0.12:9000")


def test_a_host_with_a_home_of_its_own_needs_the_shared_store(tmp_path):
    """A replica host's own home holds its replicas' state; without a shared store their
    prediction log would land where the canary's analysis cannot read it: refused by name."""
    from evergreen.rollout.targets import _host_settings
    from evergreen.settings import EvergreenSettings, ReplicaHost

    host = ReplicaHost(address="10.9.0.11", home=str(tmp_path / "h1"))
    alone = EvergreenSettings(home=tmp_path / "control")
    with pytest.raises(ValueError, match="EVERGREEN_SHARED_STORE"):
        _host_settings(alone, host)
    shared = alone.model_copy(update={"shared_store": tmp_path / "shared"})
    on_host = _host_settings(shared, host)
    assert on_host.home == tmp_path / "h1" and on_host.serving_dir.is_relative_to(tmp_path / "h1")
    assert on_host.predictions_dir == shared.predictions_dir  # one log, on the store
    assert on_host.bentoml_home == shared.bentoml_home
    assert _host_settings(shared, ReplicaHost(address="10.9.0.12")) is shared
