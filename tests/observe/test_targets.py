"""What Prometheus is told to scrape: each Caddy's metrics server is a configuration Caddy
accepts, and every state write rewrites the file service discovery's lists of replicas and
routers (and leaves them alone when nothing they list changed)."""

from __future__ import annotations

import json

from evergreen.rollout import caddy
from evergreen.rollout.processes import ProcessRef
from evergreen.rollout.scrape_targets import REPLICAS_FILE, ROUTERS_FILE, scrape_dir
from evergreen.rollout.state import READY, STOPPED, ReplicaState, RevisionState, mutate_state
from tests.rollout.conftest import fixture_spec, rollout_settings
from tests.rollout.test_rollout_units import caddy_accepts


def test_caddy_accepts_its_configurations_with_a_metrics_server(tmp_path):
    policy = caddy.RouterPolicy()
    socket = str(tmp_path / "admin.sock")
    upstreams = [caddy.Upstream("127.0.0.1:9001", 1)]
    router = caddy.router_config(socket, "127.0.0.1:18080", upstreams, policy, "127.0.0.1:18081")
    edge = caddy.edge_config(socket, "127.0.0.1:8080", "127.0.0.1:18080", policy, "127.0.0.1:18082")
    for config in (router, edge):
        http = config["apps"]["http"]
        assert http["metrics"] == {}
        assert http["servers"]["metrics"]["listen"] == [
            "127.0.0.1:18081" if config is router else "127.0.0.1:18082"
        ]
        assert http["servers"]["metrics"]["routes"] == [{"handle": [{"handler": "metrics"}]}]
        done = caddy_accepts(config, tmp_path)
        assert done.returncode == 0, done.stderr[-500:]
    # The metrics server proxies nothing: the router's drift check still sees one upstream.
    assert caddy.routed_shares(router) == {"127.0.0.1:9001": 1}


def _revision(name: str, ports: list[int], phase: str = READY) -> RevisionState:
    spec = fixture_spec(f"model-{name}", replicas=len(ports))
    replicas = [
        ReplicaState(index=i, port=p, log="x.log", started_at="t", ready=True)
        for i, p in enumerate(ports)
    ]
    return RevisionState(name, spec, "process", "t", weight=50, phase=phase, replicas=replicas)


def test_every_state_write_keeps_the_scrape_targets_in_step(tmp_path):
    settings = rollout_settings(tmp_path / "home")
    folder = scrape_dir(settings)
    edge = caddy.CaddyRef("edge", ProcessRef(1, 0.0), "/x.sock", "127.0.0.1:8080", "127.0.0.1:9101")
    with mutate_state(settings) as state:
        state.edge = edge
        state.revisions = {"r0001": _revision("r0001", [9001, 9002])}
        state.stable = "r0001"

    replicas = json.loads((folder / REPLICAS_FILE).read_text())
    assert [g["targets"] for g in replicas] == [["127.0.0.1:9001"], ["127.0.0.1:9002"]]
    assert replicas[1]["labels"] == {
        "revision": "r0001",
        "replica": "1",
        "model_version": "model-r0001",
        "bento": str(fixture_spec("x").source),
        "stable": "true",
    }
    routers = json.loads((folder / ROUTERS_FILE).read_text())
    assert routers == [{"targets": ["127.0.0.1:9101"], "labels": {"role": "edge"}}]

    before = (folder / ROUTERS_FILE).stat().st_mtime_ns
    with mutate_state(settings) as state:  # a rollout: r0002 up, r0001 stopped
        state.revisions["r0002"] = _revision("r0002", [9003])
        state.revisions["r0001"].phase = STOPPED

    replicas = json.loads((folder / REPLICAS_FILE).read_text())
    assert [(g["targets"], g["labels"]["revision"]) for g in replicas] == [
        (["127.0.0.1:9003"], "r0002")
    ]
    assert (folder / ROUTERS_FILE).stat().st_mtime_ns == before  # unchanged: not rewritten
