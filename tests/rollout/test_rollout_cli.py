"""The serving commands in homes of their own: an empty home, and a finished one (served,
stopped, served again), where a rollback must go to the previous model, not the same one."""

import pytest
from typer.testing import CliRunner

from evergreen.rollout.controller import RolloutController
from evergreen.rollout.state import read_state
from evergreen.rollout.strategies import BlueGreen
from evergreen.rollout.supervisor import Supervisor
from tests.rollout.conftest import fixture_spec, processes_of, rollout_settings, tear_down


@pytest.fixture
def cli_home(tmp_path, monkeypatch):
    from evergreen.settings import get_settings

    settings = rollout_settings(tmp_path / "home")
    monkeypatch.setenv("EVERGREEN_HOME", str(settings.home))
    monkeypatch.setenv("EVERGREEN_SERVE_PORT", str(settings.serve_port))
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()
    tear_down(settings)


def test_rollback_and_stop_in_an_empty_home_start_nothing_and_say_so(cli_home):
    from evergreen.cli import app

    runner = CliRunner()

    rollback = runner.invoke(app, ["rollback", "--reason", "x"])

    assert rollback.exit_code == 1
    assert "nothing serves" in rollback.output and "Traceback" not in rollback.output
    assert processes_of(cli_home.home) == []  # it used to start the edge and the router
    assert read_state(cli_home).router is None
    stop = runner.invoke(app, ["stop"])
    assert stop.exit_code == 0 and "stopped nothing" in stop.output

    Supervisor(cli_home).ensure_router()  # something to stop: it must say what
    stop = runner.invoke(app, ["stop"])
    assert "the router" in stop.output and "the edge" in stop.output, stop.output
    assert processes_of(cli_home.home) == []


@pytest.mark.e2e
def test_rollback_after_serve_on_a_finished_home_serves_the_previous_model(cli_home):
    controller = RolloutController(cli_home, Supervisor(cli_home), actor="pytest")
    controller.serve(fixture_spec("v1", replicas=1))
    controller.deploy(fixture_spec("v2", replicas=2), BlueGreen(0, 0.0, 0.0), "v2 by test")
    controller.stop()  # the demo ends like this
    controller.serve()  # `evergreen serve` on the finished home: v2 again, a new revision
    assert read_state(cli_home).revisions[read_state(cli_home).stable].model_version == "v2"

    result = controller.rollback("x")

    state = read_state(cli_home)
    serving = state.revisions[state.stable]
    assert result.rollout.model_version == serving.model_version == "v1"  # not v2 again
    assert len(serving.replicas) == 2  # as many as served: one replica is a single point
    assert state.weights() == {serving.name: 100}
