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


def _log_scores(settings, model: str, day, count: int) -> None:
    """``count`` transactions of data day ``day`` scored by ``model`` now (the log's writer)."""
    import datetime as dt

    from evergreen.serving.prediction_log import PredictionLog, prediction_records
    from evergreen.serving.schemas import Prediction, Transaction

    moment = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
    txs = [
        Transaction(
            transaction_id=i,
            customer_id=i,
            terminal_id=i,
            amount=1.0,
            tx_datetime=moment + dt.timedelta(minutes=i),
            region="north",
            channel="pos",
            card_type="debit",
        )
        for i in range(count)
    ]
    scored = [
        Prediction(
            transaction_id=t.transaction_id,
            fraud_probability=0.1,
            decision=False,
            threshold=0.5,
            model_version=model,
            request_id="r",
        )
        for t in txs
    ]
    log = PredictionLog(settings.predictions_dir)
    log.append(prediction_records(txs, {}, scored, dt.datetime.now(dt.UTC)))
    log.close()


def test_history_at_a_data_day_says_which_models_scored_it_and_why(cli_home):
    """The demo serves weeks of data days within an hour of wall clock: ``history --at
    2018-06-06`` read the day as wall-clock time and said "nothing served"."""
    import datetime as dt
    import json

    from evergreen.cli import app
    from evergreen.rollout.records import insert_rollout, insert_routing_change, rollout_ledger

    day = dt.date(2018, 6, 6)
    common = {"target": "process", "source": "x", "config": {}, "actor": "pytest"}
    with rollout_ledger(cli_home) as conn:
        first = insert_rollout(conn, kind="initial", revision="r0001", model_version="m:v1",
                               from_revision=None, from_model_version=None,
                               reason="serve the champion", **common)  # fmt: skip
        insert_routing_change(conn, {"r0001": 100}, {"r0001": "m:v1"}, "serve", first)
    _log_scores(cli_home, "m:v1", day, 9)
    with rollout_ledger(cli_home) as conn:
        canary = insert_rollout(conn, kind="canary", revision="r0002", model_version="m:v2",
                                from_revision="r0001", from_model_version="m:v1",
                                reason="drift retrain", **common)  # fmt: skip
        models = {"r0001": "m:v1", "r0002": "m:v2"}
        insert_routing_change(conn, {"r0001": 90, "r0002": 10}, models, "canary 10", canary)
    _log_scores(cli_home, "m:v2", day, 1)
    runner = CliRunner()

    shown = runner.invoke(app, ["history", "--at", day.isoformat()])

    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "on the wall clock" in text and "first routing change is at" in text
    assert "On data day 2018-06-06" in text and "10 transactions scored" in text
    answer = json.loads(runner.invoke(app, ["history", "--at", "2018-06-06", "--json"]).output)
    assert answer["clock"] == "wall" and answer["serving"] == []
    scored = {s["model_version"]: s for s in answer["data_day"]["scored"]}
    assert {m: (s["transactions"], s["revision"]) for m, s in scored.items()} == {
        "m:v1": (9, "r0001"),
        "m:v2": (1, "r0002"),
    }
    first_why, canary_why = scored["m:v1"]["why"], scored["m:v2"]["why"]
    assert "initial rollout" in first_why and "serve the champion" in first_why
    assert "canary rollout" in canary_why and "drift retrain" in canary_why
    assert scored["m:v1"]["first_transaction"].startswith("2018-06-06T12:00")

    data_only = runner.invoke(app, ["history", "--at", "2018-06-07", "--clock", "data"])
    assert data_only.exit_code == 0, data_only.output
    assert "nothing scored" in data_only.output and "2018-06-06 to 2018-06-06" in data_only.output
    assert "wall clock" not in data_only.output
    wrong = runner.invoke(app, ["history", "--at", "2018-06-06", "--clock", "sundial"])
    assert wrong.exit_code == 2 and "--clock" in wrong.output
