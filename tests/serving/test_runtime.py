"""The serving pieces without a server: request parsing, readiness, dependency pins, start-up
errors."""

import dataclasses
import datetime as dt

import pytest
from pydantic import ValidationError

from evergreen.serving.schemas import PredictRequest

TX = {
    "transaction_id": 1,
    "customer_id": 2,
    "terminal_id": 3,
    "amount": 12.5,
    "tx_datetime": "2018-04-12T10:00:00+02:00",
    "region": "north_west",
    "channel": "pos",
    "card_type": "debit",
}


def test_one_transaction_is_a_batch_of_one_and_times_are_utc():
    single = PredictRequest.model_validate_json(PredictRequest.model_validate(TX).model_dump_json())
    naive = PredictRequest.model_validate({**TX, "tx_datetime": "2018-04-12T10:00:00"})

    assert len(single.transactions) == 1
    assert single.transactions[0].tx_datetime == dt.datetime(2018, 4, 12, 8, tzinfo=dt.UTC)
    assert naive.transactions[0].tx_datetime == dt.datetime(2018, 4, 12, 10, tzinfo=dt.UTC)


def test_an_empty_or_oversized_batch_is_refused():
    with pytest.raises(ValidationError, match="transactions"):
        PredictRequest.model_validate({"transactions": []})
    with pytest.raises(ValidationError, match="transactions"):
        PredictRequest.model_validate({"transactions": [TX] * 1001})


def _runtime(settings, serving_home, **changes):
    from evergreen.models.bentoml_home import model_store
    from evergreen.serving.runtime import ServingRuntime, serving_model

    stored = model_store(serving_home.settings).get(serving_home.champion)
    model = dataclasses.replace(serving_model(stored), **changes)
    return ServingRuntime(settings, model)


def test_ready_only_with_the_models_feature_service_version(serving_home, tmp_path):
    from tests.conftest import make_settings

    ready = _runtime(serving_home.settings, serving_home).readiness()
    other_version = _runtime(
        serving_home.settings, serving_home, feature_service_version="0123456789ab"
    ).readiness()
    no_store = _runtime(make_settings(tmp_path / "empty"), serving_home).readiness()

    assert ready.ready, ready.reason
    assert not other_version.ready and "version 0123456789ab" in other_version.reason
    assert not no_store.ready and "online store" in no_store.reason


def test_the_bentos_requirements_are_the_locks_pins():
    from evergreen.serving.bento import lock_pins, serving_requirements

    pins = lock_pins()
    requirements = serving_requirements()

    names = {line.split("==")[0] for line in requirements}
    assert {"bentoml", "catboost", "feast", "pandas", "ibis-framework", "uvicorn"} <= names
    assert "dagster" not in names and "evidently" not in names
    assert not names & {"plotly", "matplotlib", "graphviz", "mypy"}  # required, never imported
    assert all(pins[name] == version for name, version in (r.split("==") for r in requirements))


def test_a_server_that_cannot_start_raises_with_its_log(serving_home, tmp_path):
    from evergreen.serving.process import BentoProcess, ServingStartError

    process = BentoProcess("fraud_detection:nosuchversion", serving_home.settings)

    with pytest.raises(ServingStartError, match="exited with code") as error, process:
        pass
    assert "nosuchversion" in str(error.value)


def test_a_port_taken_before_the_server_binds_it_is_picked_again(
    serving_home, built_bento, tmp_path, monkeypatch
):
    """A port found free can be taken by another process (a test's other worker) before
    ``bentoml serve`` binds it: the server is started again, once, on a new port."""
    import socket

    from evergreen.serving import process as process_module

    holder = socket.create_server(("127.0.0.1", 0))  # another process's listening port
    taken = holder.getsockname()[1]
    picks = iter([taken])
    real_free_port = process_module.free_port
    monkeypatch.setattr(
        process_module, "free_port", lambda host: next(picks, None) or real_free_port(host)
    )
    try:
        log = tmp_path / "serve.log"
        with process_module.BentoProcess(
            built_bento.tag, serving_home.settings, log_path=log
        ) as served:
            assert served.port != taken
    finally:
        holder.close()
    assert "Address already in use" in log.read_text()  # the first start did fail on it


def test_model_rows_score_exactly_as_the_model_layers_frame(serving_home):
    from evergreen.features.feast_client import OnlineReader, feature_store
    from evergreen.models.bentoml_home import model_store
    from evergreen.models.registry import ModelRegistry
    from evergreen.serving.runtime import serving_model
    from evergreen.serving.schemas import Transaction
    from evergreen.serving.scoring import input_frame, model_rows, read_features
    from tests.serving.conftest import served_transactions

    settings = serving_home.settings
    bodies = served_transactions(settings, 40)
    bodies.append({**bodies[0], "transaction_id": 1, "customer_id": 10**12, "terminal_id": 10**12})
    transactions = [Transaction.model_validate(b) for b in bodies]
    features = read_features(OnlineReader.open(feature_store(settings)), transactions)
    served = serving_model(model_store(settings).get(serving_home.champion))

    rows = model_rows(transactions, features, served)
    frame = input_frame(transactions, features)

    reference = ModelRegistry(settings).load(serving_home.champion).predict_proba(frame)
    assert served.predict_rows(rows).tolist() == pytest.approx(reference.tolist(), abs=1e-12)
    assert frame.astype(object).where(frame.notna(), None).values.tolist() == [
        [None if v != v else v for v in row] for row in rows
    ]


def test_container_settings_make_the_bento_install_offline_from_local_wheels(tmp_path):
    import yaml

    from evergreen.serving.bento import BENTOFILE, container_options
    from tests.conftest import make_settings

    plain = yaml.safe_load(BENTOFILE.read_text())
    settings = make_settings(tmp_path / "home").model_copy(
        update={"container_base_image": "localhost/py:3.11", "container_wheels_dir": tmp_path}
    )

    offline = container_options(settings, plain)

    assert container_options(make_settings(tmp_path / "plain"), plain) == plain
    assert offline["docker"]["base_image"] == "localhost/py:3.11"
    assert offline["docker"]["dockerfile_template"].endswith("Dockerfile.template")
    assert "distro" not in offline["docker"]  # BentoML's v1 path: no apt layer
    assert offline["python"]["no_index"] is True
    assert offline["python"]["find_links"] == [str(tmp_path)]
    assert {"name": "UV_OFFLINE", "value": "1"} in offline["envs"]
    assert "base_image" not in plain["docker"]  # the bentofile itself is untouched


def test_scoring_a_row_keeps_to_the_callers_thread(serving_home):
    """CatBoost's Pool built with its default thread count wakes a TBB worker that then spins
    (sched_yield) on the other core for as long as requests keep coming: a replica burnt two
    cores for one core's work. Other threads' CPU while scoring must stay near zero."""
    import time

    from evergreen.features.feast_client import OnlineReader, feature_store
    from evergreen.models.bentoml_home import model_store
    from evergreen.serving.runtime import serving_model
    from evergreen.serving.schemas import Transaction
    from evergreen.serving.scoring import model_rows, read_features
    from tests.serving.conftest import served_transactions

    settings = serving_home.settings
    transactions = [Transaction.model_validate(b) for b in served_transactions(settings, 1)]
    features = read_features(OnlineReader.open(feature_store(settings)), transactions)
    served = serving_model(model_store(settings).get(serving_home.champion))
    rows = model_rows(transactions, features, served)
    served.predict_rows(rows)
    time.sleep(0.3)  # let any worker woken by earlier fits in this process fall asleep

    process, own = time.process_time(), time.thread_time()
    for _ in range(2000):
        served.predict_rows(rows)
    own = time.thread_time() - own
    others = time.process_time() - process - own
    assert others < 0.25 * own, f"other threads used {others:.3f} s of CPU beside {own:.3f} s"


def test_a_serving_runtime_leaves_wal_checkpoints_to_a_thread_of_their_own(serving_home, tmp_path):
    """No request pays for a WAL checkpoint's sync (``WalCheckpointer``)."""
    from evergreen.models.bentoml_home import model_store
    from evergreen.serving.prediction_log import PredictionLog
    from evergreen.serving.runtime import ServingRuntime, serving_model

    settings = serving_home.settings
    model = serving_model(model_store(settings).get(serving_home.champion))
    runtime = ServingRuntime(settings, model, PredictionLog(tmp_path / "log")).open()
    reader = runtime.reader()
    checkpoints = reader._checkpointer._thread
    try:
        assert reader.connection().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert checkpoints.is_alive()
    finally:
        runtime.close()
    assert not checkpoints.is_alive()
