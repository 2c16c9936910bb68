"""Zero training/serving skew: a live day replayed through the router, every payment of the day
one at a time in time order, to two replicas of the champion's bento at once (the router
alternates between them, as during a blue-green or a canary); every feature vector logged at
serve time equals the training set's vector of that transaction (the request-time windows
computed from the warehouse, the daily views by Feast's point-in-time join), floats to 1e-9
relative.

The router serves a copy of the serving fixture's home, so stopping the stack (and killing, by
pid, whatever carries that home in its environment) cannot touch the session's other servers.
"""

import datetime as dt
import json
import shutil
from collections import Counter

import httpx
import pytest

from evergreen.features.realtime import micros
from evergreen.features.realtime_state import RealtimeState
from evergreen.ports import free_port
from evergreen.serving.prediction_log import day_dir
from tests.conftest import day
from tests.rollout.conftest import tear_down
from tests.serving.conftest import SERVED_DAY

REPLICAS = 2


@pytest.fixture(scope="module")
def routed(serving_home, built_bento, tmp_path_factory):
    """(settings, serving URL): a copy of the serving home, re-applied to its own paths, whose
    router serves ``REPLICAS`` replicas of the champion's bento; the stack stopped at the end."""
    from evergreen.features.feast_client import apply_definitions
    from evergreen.rollout.controller import RolloutController
    from evergreen.rollout.revisions import resolve_revision
    from evergreen.rollout.supervisor import Supervisor, SupervisorOptions

    home = tmp_path_factory.mktemp("routed") / "home"
    shutil.copytree(serving_home.settings.home, home, symlinks=True)
    shutil.rmtree(home / "serving", ignore_errors=True)
    settings = serving_home.settings.model_copy(update={"home": home, "serve_port": free_port()})
    apply_definitions(settings.ensure_dirs())  # the copy's registry names the copy's files
    supervisor = Supervisor(settings, options=SupervisorOptions(ready_timeout_s=180))
    controller = RolloutController(settings, supervisor, actor="pytest")
    try:
        controller.serve(resolve_revision(settings, built_bento.tag, {}, replicas=REPLICAS))
        yield settings, supervisor.serving_url()
    finally:
        tear_down(settings)


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def _day_as_the_batch_left_it(settings) -> None:
    """The state before the live day: earlier tests served some of its payments (a few with
    altered cards); drop every event of the day, as if the day had not begun."""
    state = RealtimeState(settings.online_store_path, "evergreen")
    start = micros(dt.datetime.combine(day(SERVED_DAY), dt.time(), tzinfo=dt.UTC))
    conn = state.connect()
    conn.execute(
        f"DELETE FROM {state.events} WHERE tx_us >= ? OR transaction_id >= ?", (start, 9 * 10**15)
    )
    newest = conn.execute(f"SELECT max(tx_us) FROM {state.events}").fetchone()[0]
    conn.execute(f"UPDATE {state.clock} SET tx_us = ?", (newest,))
    conn.close()


def _served_day(settings):
    from evergreen.warehouse import connect

    with connect(settings.warehouse_path, read_only=True) as conn:
        frame = conn.sql(
            "SELECT transaction_id, customer_id, terminal_id, tx_datetime AS event_timestamp, "
            "tx_datetime, amount, region, channel, card_type FROM raw_transactions "
            "WHERE partition_date = $d ORDER BY tx_datetime, transaction_id",
            params={"d": day(SERVED_DAY)},
        ).df()
    for column in ("event_timestamp", "tx_datetime"):
        frame[column] = frame[column].dt.tz_localize("UTC")
    return frame


def _training_vectors(settings, frame) -> dict[int, dict]:
    from evergreen.features.feast_client import feature_store, fraud_feature_service
    from evergreen.features.training_set import build_training_set
    from evergreen.warehouse import connect

    store = feature_store(settings)
    with connect(settings.warehouse_path, read_only=True) as conn:
        table = build_training_set(store, frame, fraud_feature_service(store), warehouse=conn)
    return {row["transaction_id"]: row for row in table.to_pylist()}


def test_every_served_vector_of_a_replayed_day_equals_the_training_sets(routed):
    settings, url = routed
    _day_as_the_batch_left_it(settings)
    frame = _served_day(settings)
    request_ids = set()
    with httpx.Client(timeout=30) as client:
        for row in frame.to_dict("records"):
            body = {
                k: row[k]
                for k in (
                    "transaction_id",
                    "customer_id",
                    "terminal_id",
                    "amount",
                    "region",
                    "channel",
                    "card_type",
                )
            }
            body["tx_datetime"] = row["tx_datetime"].isoformat()
            response = client.post(f"{url}/predict", json=body)
            assert response.status_code == 200, response.text
            request_ids.add(response.json()["request_id"])

    folder = day_dir(settings.predictions_dir, day(SERVED_DAY))
    logged = [json.loads(line) for f in folder.glob("*.jsonl") for line in f.open()]
    served = [r for r in logged if r["request_id"] in request_ids]
    served_vectors = {r["transaction_id"]: r["features"] for r in served}
    by_replica = Counter(r["replica"] for r in served)
    expected = _training_vectors(settings, frame)
    differing = [
        (tx, name, features[name], expected[tx][name])
        for tx, features in served_vectors.items()
        for name in features
        if not _same(features[name], expected[tx][name])
    ]
    compared = len(served_vectors)
    print(
        f"\nzero skew through the router: {compared} transactions compared, "
        f"{len({d[0] for d in differing})} differ; served by replica {dict(by_replica)}"
    )
    assert compared == len(frame) > 300
    assert len(by_replica) == REPLICAS and min(by_replica.values()) > compared / 4  # both wrote
    assert differing == []
    assert any(f["card_tx_count_1h"] for f in served_vectors.values())  # windows were filled
