"""Serving on any online store Feast supports: Evergreen's SQLite store through the fast path,
every other store (a real Redis here, and Feast's own SQLite store) through Feast's
``get_online_features``. Each store is filled from the same feature tables; what it serves
must be what the SQLite fast path serves, score for score, and a ``bentoml serve`` replica on
Redis must turn ready and answer."""

from __future__ import annotations

import datetime as dt
import shutil
import time

import httpx
import numpy as np
import pytest

from evergreen.settings import EvergreenSettings, write_home_settings
from tests.conftest import SMALL, day
from tests.serving.conftest import ONLINE_DAY, reconcile_days, served_transactions


def _runtime(settings: EvergreenSettings, serving_home):
    from evergreen.models.bentoml_home import model_store
    from evergreen.serving.runtime import ServingRuntime, serving_model

    stored = model_store(serving_home.settings).get(serving_home.champion)
    return ServingRuntime(settings, serving_model(stored))


def _home_on(store: dict | None, serving_home, built_bento, root, **values) -> EvergreenSettings:
    """A copy of the serving home whose online store is ``store`` (recorded in the home's
    evergreen.yaml, as a deployment would, with any other ``values``), applied and filled with
    the same day."""
    from evergreen.features.feast_client import apply_definitions, feature_store, materialize_day
    from evergreen.features.sqlite_online_store import EvergreenSqliteOnlineStoreConfig

    home = root / "home"
    shutil.copytree(serving_home.settings.home, home, ignore=shutil.ignore_patterns("*.log"))
    write_home_settings(
        home,
        {"feast_online_store": store, "label_delay_days": SMALL["label_delay_days"], **values},
    )
    settings = EvergreenSettings(home=home)
    apply_definitions(settings, force=True)
    store = feature_store(settings)
    materialize_day(store, day(ONLINE_DAY))
    if not isinstance(store.config.online_store, EvergreenSqliteOnlineStoreConfig):
        reconcile_days(settings, store, range(ONLINE_DAY + 1))  # its state: not the copy's
    return settings


@pytest.fixture(scope="module")
def redis_home(serving_home, built_bento, redis_server, tmp_path_factory):
    store = {"type": "redis", "connection_string": f"{redis_server.host}:{redis_server.port}"}
    return _home_on(store, serving_home, built_bento, tmp_path_factory.mktemp("on_redis"))


def _predict(runtime, bodies):
    from evergreen.serving.schemas import PredictRequest

    return runtime.predict(PredictRequest.model_validate({"transactions": bodies}))


def _same_answers(settings, serving_home) -> int:
    """Scores and missing views on ``settings``' store equal the SQLite fast path's."""
    bodies = served_transactions(serving_home.settings, 40)
    unknown = {**bodies[0], "transaction_id": 1, "customer_id": 10**9, "terminal_id": 10**9}
    bodies.append(unknown)
    fast = _predict(_runtime(serving_home.settings, serving_home), bodies).predictions
    other = _predict(_runtime(settings, serving_home), bodies).predictions
    np.testing.assert_allclose(
        [p.fraud_probability for p in other], [p.fraud_probability for p in fast], atol=1e-9
    )
    assert [p.features_missing for p in other] == [p.features_missing for p in fast]
    assert other[-1].features_missing  # the unknown ids are scored as missing, on both
    return sum(not p.features_missing for p in other)


def test_evergreens_sqlite_store_takes_the_fast_path(serving_home):
    from evergreen.features.feast_client import OnlineReader, feature_store

    assert OnlineReader.open(feature_store(serving_home.settings)).fast


def test_redis_serves_what_the_sqlite_fast_path_serves(redis_home, serving_home):
    from evergreen.features.feast_client import OnlineReader, feature_store

    assert OnlineReader.open(feature_store(redis_home)).redis
    ready = _runtime(redis_home, serving_home).readiness()
    assert ready.ready, ready.reason
    assert _same_answers(redis_home, serving_home) > 20  # most rows found their features


def test_redis_reads_in_one_round_trip_what_feast_reads(redis_home, serving_home, monkeypatch):
    """Redis's fast path (Feast's hashes and the request-time state in one pipeline) reads
    value for value what ``get_online_features`` and the state's own read give, within and
    past the TTL, in one write to the socket."""
    import redis

    from evergreen.features.feast_client import OnlineReader, feature_store

    reader = OnlineReader.open(feature_store(redis_home))
    bodies = served_transactions(serving_home.settings, 30)
    rows = {f: [b[f] for b in bodies] + [10**9] for f in ("customer_id", "terminal_id")}
    rows["amount"] = [b["amount"] for b in bodies] + [5.0]
    sends = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):
        sends.append(command)
        return original(self, command, check_health)

    first = dt.datetime.fromisoformat(bodies[0]["tx_datetime"])
    rows["tx_datetime"] = [first] * len(rows["amount"])
    reader.read(rows, first)  # connected now
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    for when in (first, first + dt.timedelta(days=3)):  # within, then past the TTL
        rows["tx_datetime"] = [when] * len(rows["amount"])
        sends.clear()
        fast = reader.read(rows, when)
        assert len(sends) == 1  # one round trip for every view and the state
        assert fast == reader.read_through_feast(rows, when)
    within = reader.read(rows, first)
    assert any(v is not None for v in within["terminal_risk_7d"])
    assert within["card_tx_count_30d"][-1] == 0  # the unknown card: empty windows
    assert any(within["card_tx_count_30d"])  # the state on Redis holds the reconciled days


def test_feasts_own_sqlite_store_serves_too(serving_home, built_bento, tmp_path):
    path = tmp_path / "feast_sqlite.db"
    settings = _home_on({"type": "sqlite", "path": str(path)}, serving_home, built_bento, tmp_path)

    ready = _runtime(settings, serving_home).readiness()
    assert ready.ready, ready.reason
    assert _same_answers(settings, serving_home) > 20


def test_the_cluster_profile_serves_from_redis_with_feasts_registry_on_postgres(
    serving_home, built_bento, redis_server, postgres_db, tmp_path
):
    """EVERGREEN_PROFILE=cluster alone: Feast's SQL registry on PostgreSQL, the online store
    on Redis (db 1, apart from the other test's), the applied version read from the registry."""
    from evergreen.features.feast_client import applied_version, feature_store
    from evergreen.features.repo import definitions_version

    redis_url = f"redis://{redis_server.host}:{redis_server.port}/1"
    settings = _home_on(
        None, serving_home, built_bento, tmp_path,
        profile="cluster", postgres_url=postgres_db, redis_url=redis_url,
    )  # fmt: skip
    config = feature_store(settings).config
    assert config.registry.registry_type == "sql" and config.online_store.type == "redis"
    assert applied_version(settings) == definitions_version()
    ready = _runtime(settings, serving_home).readiness()
    assert ready.ready, ready.reason
    assert _same_answers(settings, serving_home) > 20


def test_an_unreachable_redis_is_not_ready_with_a_reason(serving_home, redis_home):
    from evergreen.ports import free_port

    nothing = {"type": "redis", "connection_string": f"127.0.0.1:{free_port()}"}
    settings = redis_home.model_copy(update={"feast_online_store": nothing})
    ready = _runtime(settings, serving_home).readiness()

    assert not ready.ready
    assert "Connection" in ready.reason, ready.reason


def test_a_bento_on_redis_turns_ready_and_answers(redis_home, built_bento, serving_home, tmp_path):
    from evergreen.features.feast_client import OnlineReader, feature_store
    from evergreen.serving.process import BentoProcess

    bodies = served_transactions(serving_home.settings, 60)[-5:]  # none served before here
    reader = OnlineReader.open(feature_store(redis_home))
    after = max(dt.datetime.fromisoformat(b["tx_datetime"]) for b in bodies)
    cards = {
        "customer_id": [b["customer_id"] for b in bodies],
        "terminal_id": [b["terminal_id"] for b in bodies],
        "amount": [1.0] * len(bodies),
    }
    later = after + dt.timedelta(seconds=1)
    before = reader.state.read(None, cards, later)["card_tx_count_30d"]
    assert reader.state.held([b["transaction_id"] for b in bodies]) == {
        b["transaction_id"]: 0 for b in bodies
    }
    with BentoProcess(built_bento.tag, redis_home, log_path=tmp_path / "serve.log") as served:
        assert httpx.get(f"{served.url}/readyz", timeout=10).status_code == 200
        answer = httpx.post(f"{served.url}/predict", json={"transactions": bodies}, timeout=30)
        metrics = httpx.get(f"{served.url}/metrics", timeout=10).text

    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [p["transaction_id"] for p in predictions] == [b["transaction_id"] for b in bodies]
    assert all(0.0 <= p["fraud_probability"] <= 1.0 for p in predictions)
    # The scores histogram a cluster's canary analysis compares between canary and stable.
    counted = f'evergreen_fraud_probability_count{{model_version="{serving_home.champion}"}} 5.0'
    assert counted in metrics, metrics[-2000:]
    # The replica wrote the request-time state on Redis: each transaction once, the data time
    # moved to the newest, each card's window one payment fuller per payment served.
    ids = [b["transaction_id"] for b in bodies]
    assert reader.state.held(ids) == dict.fromkeys(ids, 1)
    assert reader.state.data_time() >= after
    now = reader.state.read(None, cards, later)["card_tx_count_30d"]
    per_card = [cards["customer_id"].count(c) for c in cards["customer_id"]]
    assert [n - b for n, b in zip(now, before, strict=True)] == per_card


def test_a_redis_restart_is_a_503_with_a_reason_then_serving_recovers(
    serving_home, built_bento, tmp_path
):
    """The online store's Redis (persistent, as a cluster's is) stops under a replica: it turns
    not ready with the reason, a request is refused as not ready (the bento's 503) with nothing
    scored or written; Redis back on the same address, the replica is ready and scores again by
    itself, no restart of its own."""
    from evergreen.features.feast_client import OnlineReader, feature_store
    from evergreen.ports import free_port
    from evergreen.serving.runtime import NotReady
    from tests.servers import RedisServer

    server = RedisServer(tmp_path / "redis", free_port(), persist=True).start()
    try:
        store = {"type": "redis", "connection_string": f"{server.host}:{server.port}"}
        settings = _home_on(store, serving_home, built_bento, tmp_path)
        runtime = _runtime(settings, serving_home)
        bodies = served_transactions(serving_home.settings, 80)[-3:]  # none served elsewhere
        assert runtime.readiness().ready

        server.stop()
        down = runtime.readiness()
        with pytest.raises(NotReady, match="online store unavailable: redis"):
            _predict(runtime, bodies)

        server.start()
        up = runtime.readiness()
        state = OnlineReader.open(feature_store(settings)).state
        assert state.held([b["transaction_id"] for b in bodies]) == dict.fromkeys(
            [b["transaction_id"] for b in bodies], 0
        )  # the refused request wrote nothing
        answer = _predict(runtime, bodies)
    finally:
        server.stop()
    assert not down.ready and str(server.port) in down.reason, down.reason
    assert up.ready, up.reason
    assert [p.transaction_id for p in answer.predictions] == [b["transaction_id"] for b in bodies]
    assert not all(p.features_missing for p in answer.predictions)  # the rows survived


def _logged_ids(settings) -> set[int]:
    """Transaction ids in the prediction log of ``settings``' home (every replica's files)."""
    import json

    return {
        json.loads(line)["transaction_id"]
        for path in settings.predictions_dir.rglob("*.jsonl")
        for line in path.open()
        if line.strip()
    }


def test_a_redis_restart_under_routed_load_refuses_with_a_reason_then_recovers(
    serving_home, built_bento, tmp_path
):
    """Two ``bentoml serve`` replicas on a persistent Redis behind the real router (Caddy),
    under a bounded load loop: Redis stopped, the replicas turn not ready and every request
    is answered 503 with the reason (nothing scored, logged or written into the state on
    missing features, never a 500 or a dropped connection); Redis back, serving recovers by
    itself, nothing restarted."""
    from evergreen.features.feast_client import OnlineReader, feature_store
    from evergreen.ports import free_port
    from evergreen.rollout.controller import RolloutController
    from evergreen.rollout.load import LoadLoop, probe_transactions
    from evergreen.rollout.revisions import resolve_revision
    from evergreen.rollout.state import read_state
    from evergreen.rollout.supervisor import Supervisor, SupervisorOptions
    from tests.rollout.conftest import tear_down, wait_for
    from tests.servers import RedisServer

    server = RedisServer(tmp_path / "redis", free_port(), persist=True).start()
    store = {"type": "redis", "connection_string": f"{server.host}:{server.port}"}
    settings = _home_on(store, serving_home, built_bento, tmp_path)
    shutil.rmtree(settings.serving_dir, ignore_errors=True)  # the copy serves nothing yet
    settings = settings.model_copy(update={"serve_port": free_port()})
    supervisor = Supervisor(settings, options=SupervisorOptions(ready_timeout_s=180))
    replicas = []
    try:
        RolloutController(settings, supervisor, actor="pytest").serve(
            resolve_revision(settings, built_bento.tag, {}, replicas=2)
        )
        state = read_state(settings)
        replicas = [r for rev in state.revisions.values() for r in rev.replicas]
        payloads = probe_transactions(settings, 3000, seed=16)
        loop = LoadLoop(supervisor.serving_url(), rate=40, threads=4, payloads=payloads)
        with loop:
            time.sleep(1.0)
            server.stop()
            wait_for(
                lambda: all(
                    httpx.get(f"http://127.0.0.1:{r.port}/readyz", timeout=5).status_code == 503
                    for r in replicas
                ),
                30,
                "both replicas to turn not ready",
            )
            down = loop.mark()
            time.sleep(2.5)  # the router's health checks mark them down meanwhile
            back = loop.mark()
            server.start()
            wait_for(
                lambda: (late := loop.between(loop.mark() - 1.0)) and not loop.failed(late),
                60,
                "a second of answers all 200 again",
            )
            time.sleep(1.0)
        ready_after = {
            r.port: httpx.get(f"http://127.0.0.1:{r.port}/readyz", timeout=5).status_code
            for r in replicas
        }
        after = read_state(settings)
        reader = OnlineReader.open(feature_store(settings))
        held = reader.state.held([p["transaction_id"] for p in payloads])
    finally:
        tear_down(settings)
        server.stop()
    samples = loop.samples
    answered = sum(s.status == 200 for s in samples)
    refused = [s for s in samples if s.status != 200]
    print(f"{len(samples)} requests, {len(refused)} refused, answers {_refusals(refused)}")
    assert {s.status for s in samples} <= {200, 503}, {s.status for s in samples}
    assert refused and all(
        "online store unavailable" in s.error or "no ready replica answered" in s.error
        for s in refused
    ), [s.error for s in refused][:3]
    # Answered while Redis was down: a request still in flight when it came back may be scored
    # after it did (on what it then read), so it is judged with the requests after.
    while_down = [s for s in loop.between(down, back) if s.started + s.latency_s < back]
    assert while_down and not [s for s in while_down if s.status == 200]  # nothing scored
    assert set(ready_after.values()) == {200}  # ready again, by themselves
    assert {r.port: r.process for rev in after.revisions.values() for r in rev.replicas} == {
        r.port: r.process for r in replicas
    }  # the same processes: no restart
    # Each payload is sent once: a refused one was never scored (so never logged), and only a
    # request in flight as Redis stopped (its state written, its read failed) is held unlogged.
    payload_ids = {p["transaction_id"] for p in payloads}
    assert len(_logged_ids(settings) & payload_ids) == answered
    assert answered <= sum(held.values()) <= answered + loop.threads
    assert set(held.values()) <= {0, 1}


def _refusals(samples) -> dict:
    from collections import Counter

    return dict(Counter((s.status, s.error[:60]) for s in samples))
