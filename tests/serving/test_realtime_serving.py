"""The served bento and the request-time state: each /predict adds its transaction before it
answers, a timestamp far from the data time is a 400 naming the field, an unseen card has empty
windows, and a replica killed between the state write and the answer leaves a retry counting
the transaction once."""

import datetime as dt
import json

import httpx
import pytest

from evergreen.features.realtime import MAX_AHEAD, MAX_BEHIND
from evergreen.features.realtime_state import RealtimeState
from evergreen.serving.prediction_log import day_dir
from tests.conftest import day
from tests.serving.conftest import SERVED_DAY, served_transactions


def _state(settings) -> RealtimeState:
    return RealtimeState(settings.online_store_path, "evergreen")


def _when(tx: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(tx["tx_datetime"])


def _card_count_1h(state: RealtimeState, tx: dict, at: dt.datetime) -> int:
    conn = state.connect()
    try:
        rows = {"customer_id": [tx["customer_id"]], "terminal_id": [tx["terminal_id"]]}
        return state.read(conn, {**rows, "amount": [tx["amount"]]}, at)["card_tx_count_1h"][0]
    finally:
        conn.close()


def _logged(settings, request_id: str) -> list[dict]:
    folder = day_dir(settings.predictions_dir, day(SERVED_DAY))
    lines = [json.loads(line) for f in folder.glob("*.jsonl") for line in f.open()]
    return [r for r in lines if r["request_id"] == request_id]


def test_a_prediction_adds_its_transaction_before_it_answers(served, serving_home):
    state = _state(serving_home.settings)
    tx = served_transactions(serving_home.settings, 120)[100]
    before = _card_count_1h(state, tx, _when(tx) + dt.timedelta(seconds=1))

    response = httpx.post(f"{served.url}/predict", json=tx, timeout=30)

    assert response.status_code == 200
    assert state.held([tx["transaction_id"]]) == {tx["transaction_id"]: 1}
    after = _card_count_1h(state, tx, _when(tx) + dt.timedelta(seconds=1))
    assert after in (before, before + 1)  # +1 unless an earlier test had already sent it
    assert after == _card_count_1h(state, tx, _when(tx)) + 1  # counted once, not for itself
    state.close()


@pytest.mark.parametrize(
    ("shift", "words"),
    [(MAX_AHEAD + dt.timedelta(hours=1), "after"), (-MAX_BEHIND - dt.timedelta(hours=1), "before")],
)
def test_a_timestamp_far_from_the_data_time_gets_a_400_naming_it(
    served, serving_home, shift, words
):
    state = _state(serving_home.settings)
    tx = served_transactions(serving_home.settings, 1)[0]
    data_time = state.data_time()
    poison = {**tx, "transaction_id": 9 * 10**15, "tx_datetime": (data_time + shift).isoformat()}

    response = httpx.post(f"{served.url}/predict", json={"transactions": [tx, poison]}, timeout=30)

    assert response.status_code == 400
    [error] = response.json()["detail"]
    assert error["loc"] == ["transactions", 1, "tx_datetime"]
    assert f"{words} the data's current time" in error["msg"]
    assert state.held([9 * 10**15]) == {9 * 10**15: 0}  # nothing of the request was written
    assert state.data_time() == data_time
    year_2099 = {**tx, "tx_datetime": "2099-01-01T00:00:00"}
    assert httpx.post(f"{served.url}/predict", json=year_2099, timeout=30).status_code == 400
    state.close()


def test_an_unseen_card_and_terminal_are_scored_with_empty_windows(served, serving_home):
    tx = served_transactions(serving_home.settings, 1)[0]
    stranger = {**tx, "transaction_id": 9 * 10**15 + 1, "customer_id": 10**12}
    stranger["terminal_id"] = 10**12

    response = httpx.post(f"{served.url}/predict", json=stranger, timeout=30)

    assert response.status_code == 200
    [record] = _logged(serving_home.settings, response.json()["request_id"])
    features = record["features"]
    assert (features["card_tx_count_30d"], features["card_amount_sum_30d"]) == (0, 0.0)
    assert features["card_amount_mean_30d"] is None
    assert features["card_seconds_since_previous"] is None
    assert (features["terminal_tx_count_1h"], features["terminal_tx_count_24h"]) == (0, 0)


def test_a_replica_killed_after_the_state_write_leaves_a_retry_counting_once(
    served, serving_home, built_bento, tmp_path
):
    """A replica exits right after writing the state (fault injection), so the client gets no
    answer; the retry goes to another replica (``served``) and the transaction counts once."""
    from evergreen.serving.process import BentoProcess
    from evergreen.serving.runtime import EXIT_AFTER_STATE_WRITE_ENV, PREDICTIONS_DIR_ENV

    settings = serving_home.settings
    state = _state(settings)
    tx = served_transactions(settings, 200)[150]
    seen_before = _card_count_1h(state, tx, _when(tx))
    env = {EXIT_AFTER_STATE_WRITE_ENV: "1", PREDICTIONS_DIR_ENV: str(tmp_path / "log")}
    with BentoProcess(built_bento.tag, settings, env=env, log_path=tmp_path / "serve.log") as dying:
        with pytest.raises(httpx.HTTPError):  # the connection drops: no answer
            httpx.post(f"{dying.url}/predict", json=tx, timeout=30)
        assert state.held([tx["transaction_id"]]) == {tx["transaction_id"]: 1}

    retry = httpx.post(f"{served.url}/predict", json=tx, timeout=30)

    assert retry.status_code == 200
    assert state.held([tx["transaction_id"]]) == {tx["transaction_id"]: 1}
    [record] = _logged(settings, retry.json()["request_id"])
    assert record["features"]["card_tx_count_1h"] == seen_before  # read as the first attempt
    assert _card_count_1h(state, tx, _when(tx) + dt.timedelta(seconds=1)) == seen_before + 1
    state.close()
