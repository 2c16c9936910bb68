"""End to end, on a real Caddy and real ``bentoml serve`` replicas under steady load: serving,
kill -9 of a replica, blue-green, canary, a bad canary rolling back by itself, a manual
rollback, and a controller killed mid-rollout. Every test asserts that no client request failed.

The tests share one stack (``conftest.stack``) and run in file order, each starting from what
the previous left serving; windows are shortened (seconds, not minutes).
"""

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evergreen.rollout.analysis import AnalysisPolicy
from evergreen.rollout.controller import RolloutFailed
from evergreen.rollout.processes import is_alive
from evergreen.rollout.records import replica_events, rollout_ledger, unfinished_rollouts
from evergreen.rollout.state import STOPPED, read_state
from evergreen.rollout.status import serving_status
from evergreen.rollout.strategies import BlueGreen, Canary
from tests.rollout.conftest import (
    FIXTURE_SERVICE,
    assert_no_failed_requests,
    fixture_spec,
    wait_for,
    wall_to_loop,
)

pytestmark = pytest.mark.e2e
FAST_POLICY = AnalysisPolicy(max_p99_ms=250.0, min_requests=10, probe_requests=50)


def stable(controller):
    state = read_state(controller.settings)
    return state.revisions[state.stable]


def versions(samples) -> collections.Counter:
    return collections.Counter(s.model_version for s in samples)


def test_serve_routes_to_the_champion_and_is_idempotent(stack, load):
    assert "already serves" in stack.serve()
    status = serving_status(stack.settings)
    [revision] = status["revisions"]
    assert revision["weight"] == 100 and revision["model_version"] == "v1"
    assert [r["ready"] for r in revision["replicas"]] == [True, True]
    assert status["watchdog_running"] and status["router_running"] and status["edge_running"]
    time.sleep(1.5)
    samples = assert_no_failed_requests(load)
    assert set(versions(samples)) == {"v1"}


def test_kill_minus_9_of_a_replica_costs_no_request(stack, load):
    revision = stable(stack)
    victim = revision.replicas[0]
    time.sleep(1.0)
    stack.supervisor.target.kill_replica(victim)  # the supervisor and its worker, SIGKILL
    assert not is_alive(victim.process)
    time.sleep(3.0)  # traffic goes on while the replica is dead
    restarted = wait_for(
        lambda: next(
            (r for r in stable(stack).replicas if r.index == 0 and r.ready and r.restarts == 1),
            None,
        ),
        120,
        "the watchdog to restart the replica",
    )
    assert restarted.process != victim.process
    time.sleep(1.0)
    assert_no_failed_requests(load, torn_allowed=load.threads)  # the kill may tear one
    with rollout_ledger(stack.settings) as conn:
        events = [e["event"] for e in replica_events(conn, revision.name) if e["replica"] == 0]
    assert events[-3:] == ["died", "restarted", "ready"]


def test_kill_minus_9_of_the_router_costs_no_request(stack, load):
    """The edge retries for its whole try window while the watchdog restarts the router; its
    5-try cap gave up after 255 ms (37 of 3,000 requests got a 502)."""
    router = read_state(stack.settings).router
    time.sleep(1.0)
    os.kill(router.process.pid, signal.SIGKILL)
    restarted = wait_for(
        lambda: (r := read_state(stack.settings).router) and r.process != router.process and r,
        30,
        "the watchdog to restart the router",
    )
    assert is_alive(restarted.process) and restarted.listen == router.listen
    time.sleep(2.0)
    assert_no_failed_requests(load)


def test_a_dead_replica_is_marked_and_restarted_though_the_watchdog_died(stack, load, stack_env):
    from typer.testing import CliRunner

    from evergreen.cli import app

    state = read_state(stack.settings)
    os.kill(state.watchdog.pid, signal.SIGKILL)
    wait_for(lambda: not is_alive(state.watchdog), 10, "the watchdog to die")
    victim = stable(stack).replicas[1]
    stack.supervisor.target.kill_replica(victim)
    time.sleep(1.0)

    shown = CliRunner().invoke(app, ["status"])

    assert shown.exit_code == 0, shown.output
    assert f"{victim.port}(DEAD)" in shown.output and "dead replicas" in shown.output
    assert "NOT running" in shown.output
    # What the daemon's deploy_sensor does every 30 s: start the keeper of the replicas again.
    assert "started it again" in stack.supervisor.keep_watchdog_alive()
    wait_for(
        lambda: next(
            (r for r in stable(stack).replicas if r.index == 1 and r.ready and r.restarts), None
        ),
        120,
        "the new watchdog to restart the replica",
    )
    assert_no_failed_requests(load, torn_allowed=load.threads)


def test_blue_green_deploy_switches_without_a_failed_request(stack, load):
    blue = stable(stack)
    strategy = BlueGreen(warmup_requests=10, keep_previous_s=2.0, drain_s=0.5)
    result = stack.deploy(fixture_spec("v2"), strategy, "test blue-green")
    assert result.status == "completed"
    assert result.rollout.phases == [
        "started", "ready", "warmup", "shift", "switched", "previous_kept", "completed"
    ]  # fmt: skip
    green = stable(stack)
    assert green.model_version == "v2" and green.weight == 100
    switched = next(s for s in result.rollout.steps if s.phase == "switched")
    time.sleep(1.5)
    after = load.between(wall_to_loop(switched.at) + 0.5)
    assert after and set(versions(after)) == {"v2"}
    # Blue stays for its window (instant rollback), then the watchdog drains and stops it.
    wait_for(
        lambda: read_state(stack.settings).revisions[blue.name].phase == STOPPED,
        60,
        "the watchdog to retire blue",
    )
    assert not any(is_alive(r.process) for r in blue.replicas)
    assert_no_failed_requests(load)


def test_canary_deploy_moves_traffic_in_steps_with_analysis(stack, load):
    old = stable(stack)
    strategy = Canary(steps=(10, 50, 100), step_s=3.0, drain_s=0.5, analysis=FAST_POLICY)
    result = stack.deploy(fixture_spec("v3"), strategy, "test canary")
    assert result.status == "completed"
    analyses = result.analyses
    assert len(analyses) == 3 and all(a["passed"] for a in analyses)
    assert analyses[1]["canary"]["requests"] > 0
    shifts = [s for s in result.rollout.steps if s.phase == "shift"]
    at_ten = load.between(wall_to_loop(shifts[0].at) + 0.3, wall_to_loop(shifts[1].at))
    share = versions(at_ten)["v3"] / len(at_ten)
    assert 0.03 <= share <= 0.3, f"canary share at the 10 % step: {share:.2f}"
    assert stable(stack).model_version == "v3"
    assert read_state(stack.settings).revisions[old.name].phase == STOPPED
    assert_no_failed_requests(load)


def test_bad_canary_rolls_back_by_itself(stack, load):
    serving = stable(stack)
    strategy = Canary(steps=(10, 50, 100), step_s=3.0, drain_s=0.5, analysis=FAST_POLICY)
    bad = fixture_spec("v4-shifted", FIXTURE_SCORE_OFFSET=0.35)
    with pytest.raises(RolloutFailed, match="score distribution differs") as failure:
        stack.deploy(bad, strategy, "test bad canary")
    assert failure.value.rolled_back
    state = read_state(stack.settings)
    assert state.stable == serving.name and state.revisions[serving.name].weight == 100
    canary = next(r for r in state.revisions.values() if r.model_version == "v4-shifted")
    assert canary.phase == STOPPED and not any(is_alive(r.process) for r in canary.replicas)
    with rollout_ledger(stack.settings) as conn:
        assert not unfinished_rollouts(conn)
    time.sleep(1.0)
    assert_no_failed_requests(load)


def test_manual_rollback_serves_the_previous_champion(stack, load):
    state = read_state(stack.settings)
    current, previous = state.revisions[state.stable], state.revisions[state.previous]
    assert (current.model_version, previous.model_version) == ("v3", "v2")
    began = time.monotonic()
    result = stack.rollback("test: v3 misbehaves")
    seconds = time.monotonic() - began
    assert result.status == "completed" and result.rollout.kind == "rollback"
    assert stable(stack).model_version == "v2"
    assert seconds < 120
    time.sleep(1.5)
    samples = load.between(time.monotonic() - 1.0)
    assert set(versions(samples)) == {"v2"}
    assert "registry is unchanged" in result.detail  # fixture revisions are no registered model
    assert_no_failed_requests(load)


def test_controller_killed_mid_rollout_is_settled_on_restart(stack, load):
    settings = stack.settings
    serving = stable(stack)
    env = {
        **os.environ,
        "EVERGREEN_HOME": str(settings.home),
        "EVERGREEN_SERVE_PORT": str(settings.serve_port),
    }
    evergreen = str(Path(sys.executable).with_name("evergreen"))
    cmd = [evergreen, "deploy", str(FIXTURE_SERVICE)]
    cmd += ["--strategy", "canary", "--step-seconds", "120", "--replicas", "1"]
    cmd += ["--env", "FIXTURE_MODEL_VERSION=v5", "--reason", "test crash"]
    controller = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(
            lambda: read_state(settings).weights().get(serving.name) == 90,
            180,
            "the canary's first step",
        )
        time.sleep(1.0)
        controller.send_signal(signal.SIGKILL)  # the controller dies mid-analysis
        controller.wait(10)
    finally:
        if controller.poll() is None:
            controller.kill()
    with rollout_ledger(settings) as conn:
        [dangling] = unfinished_rollouts(conn)
    assert dangling.phases[-1] == "shift"
    time.sleep(2.0)  # nobody controls the rollout: the router keeps serving 90/10
    assert sorted(read_state(settings).weights().values()) == [10, 90]
    [settled] = stack.resume()
    assert settled.status == "rolled_back" and "died during 'shift'" in settled.detail
    state = read_state(settings)
    assert state.stable == serving.name and state.weights() == {serving.name: 100}
    assert state.revisions[dangling.revision].phase == STOPPED
    time.sleep(1.0)
    assert_no_failed_requests(load)


@pytest.fixture
def stack_env(stack, monkeypatch):
    """The process settings (CLI, Dagster resource) pointed at the stack's home and ports."""
    from evergreen.settings import get_settings

    settings = stack.settings
    monkeypatch.setenv("EVERGREEN_HOME", str(settings.home))
    monkeypatch.setenv("EVERGREEN_SERVE_PORT", str(settings.serve_port))
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def deployment_config(version: str, **overrides) -> dict:
    config = {
        "source": str(FIXTURE_SERVICE),
        "env": {"FIXTURE_MODEL_VERSION": version},
        "strategy": "blue-green",
        "keep_previous_seconds": 0.0,
        "warmup_requests": 5,
        "drain_seconds": 0.5,
        "replicas": 1,
        **overrides,
    }
    return {"ops": {"deployment": {"config": config}}}


def test_deployment_asset_rolls_out_and_fails_clearly(stack_env, stack, load, instance):
    from dagster import materialize

    from assets.deployment import deployment
    from evergreen.resources import EvergreenResource

    resources = {"evergreen": EvergreenResource(home=str(stack_env.home))}

    def run(config):
        return materialize(
            [deployment], instance=instance, resources=resources, run_config=config,
            raise_on_error=False,
        )  # fmt: skip

    done = run(deployment_config("v6"))
    assert done.success
    metadata = done.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["status"].value == "completed" and metadata["model_version"].value == "v6"
    assert "| switched |" in metadata["timeline"].value
    assert Path(metadata["timeline_png"].value).read_bytes()[:4] == b"\x89PNG"
    assert stable(stack).model_version == "v6"

    again = run(deployment_config("v6"))  # the same revision already serves: nothing to do
    assert again.success
    assert (
        again.get_asset_materialization_events()[0].materialization.metadata["status"].value
        == "unchanged"
    )

    erring = {"FIXTURE_MODEL_VERSION": "v7", "FIXTURE_ERROR_RATE": "1.0"}
    broken = deployment_config("v7", env=erring, strategy="canary")
    failed = run(broken)
    assert not failed.success
    failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
    error = failure.step_failure_data.error
    assert "was not deployed" in error.message and "previous revision still serves" in error.message
    assert failure.step_failure_data.user_failure_data.metadata["status"].value == "rolled_back"
    assert stable(stack).model_version == "v6"
    time.sleep(1.0)
    assert_no_failed_requests(load)


def test_deployment_asset_refuses_a_bento_without_infra_validation(stack_env, instance):
    from dagster import AssetMaterialization, materialize

    from assets.deployment import deployment
    from evergreen.resources import EvergreenResource

    resources = {"evergreen": EvergreenResource(home=str(stack_env.home))}
    nothing_built = materialize(
        [deployment], instance=instance, resources=resources, raise_on_error=False
    )
    assert not nothing_built.success
    instance.report_runless_asset_event(
        AssetMaterialization("bento", metadata={"bento_tag": "fraud_detection:unchecked"})
    )
    unchecked = materialize(
        [deployment], instance=instance, resources=resources, raise_on_error=False
    )
    messages = [
        e.step_failure_data.error.message
        for r in (nothing_built, unchecked)
        for e in r.all_events
        if e.event_type_value == "STEP_FAILURE"
    ]
    assert "No bento has been built" in messages[0]
    assert "has not passed its infra validation" in messages[1]


def test_cli_status_and_history_say_what_served_and_why(stack_env, stack):
    import json

    from typer.testing import CliRunner

    from evergreen.cli import app
    from evergreen.rollout.records import list_rollouts

    runner = CliRunner()
    status = runner.invoke(app, ["status", "--json"])
    assert status.exit_code == 0, status.output
    serving = json.loads(status.output)
    [revision] = [r for r in serving["revisions"] if r["weight"] > 0]
    assert revision["model_version"] == stable(stack).model_version and revision["since"]

    with rollout_ledger(stack.settings) as conn:
        canary = next(r for r in list_rollouts(conn, 100) if r.model_version == "v3")
    during = canary.steps[[s.phase for s in canary.steps].index("analysis")].at
    history = runner.invoke(app, ["history", "--at", during, "--json"])
    assert history.exit_code == 0, history.output
    then = json.loads(history.output)
    assert {s["model_version"]: s["weight"] for s in then["serving"]} == {"v2": 90, "v3": 10}
    assert "canary rollout" in then["why"] and "test canary" in then["why"]

    bad_time = runner.invoke(app, ["history", "--at", "yesterday-ish"])
    assert bad_time.exit_code == 2 and "--at" in bad_time.output
    unknown = runner.invoke(app, ["deploy", "no_such_model:abc"])
    assert unknown.exit_code == 1 and "is not a built bento" in unknown.output
