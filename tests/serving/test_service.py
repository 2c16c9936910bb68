"""The built bento under ``bentoml serve``: predictions, typed errors, health, metrics."""

import httpx
import pytest

from tests.serving.conftest import served_transactions


def _post(served, body) -> httpx.Response:
    return httpx.post(f"{served.url}/predict", json=body, timeout=30)


def test_one_transaction_gets_one_prediction_at_the_models_threshold(served, serving_home):
    from evergreen.models.registry import ModelRegistry

    tx = served_transactions(serving_home.settings, 1)[0]

    response = _post(served, tx)

    assert response.status_code == 200
    body = response.json()
    [prediction] = body["predictions"]
    threshold = ModelRegistry(serving_home.settings).get(serving_home.champion).threshold
    assert prediction["transaction_id"] == tx["transaction_id"]
    assert prediction["model_version"] == body["model_version"] == serving_home.champion
    assert prediction["request_id"] == body["request_id"] and len(body["request_id"]) == 32
    assert prediction["threshold"] == pytest.approx(threshold)
    assert prediction["decision"] == (prediction["fraud_probability"] >= threshold)
    assert 0.0 <= prediction["fraud_probability"] <= 1.0
    assert prediction["features_missing"] == []


def test_a_batch_is_answered_in_order_under_one_request_id(served, serving_home):
    batch = served_transactions(serving_home.settings, 20)

    response = _post(served, {"transactions": batch})

    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert [p["transaction_id"] for p in predictions] == [t["transaction_id"] for t in batch]
    assert len({p["request_id"] for p in predictions}) == 1
    single = _post(served, batch[7]).json()["predictions"][0]
    assert single["fraud_probability"] == pytest.approx(predictions[7]["fraud_probability"])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "abc"}, "amount"),
        ({"amount": -5.0}, "amount"),
        ({"tx_datetime": "yesterday"}, "tx_datetime"),
        ({"customer_id": None}, "customer_id"),
        ({"region": ""}, "region"),
        ({"amount_eur": 3.0}, "amount_eur"),
    ],
)
def test_a_malformed_transaction_gets_a_400_naming_the_field(served, serving_home, change, field):
    tx = {**served_transactions(serving_home.settings, 1)[0], **change}

    response = _post(served, tx)

    assert response.status_code == 400
    locations = [error["loc"] for error in response.json()["detail"]]
    assert any(loc[-1] == field for loc in locations), locations


def test_a_missing_field_and_a_body_that_is_not_json_get_a_400(served, serving_home):
    tx = served_transactions(serving_home.settings, 1)[0]
    del tx["terminal_id"]

    missing = _post(served, {"transactions": [tx]})
    garbage = httpx.post(
        f"{served.url}/predict", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert missing.status_code == 400
    assert missing.json()["detail"][0]["loc"] == ["transactions", 0, "terminal_id"]
    assert garbage.status_code == 400


def test_an_unknown_customer_and_terminal_are_scored_with_missing_features(served, serving_home):
    tx = {**served_transactions(serving_home.settings, 1)[0], "customer_id": 10**12}
    stranger = {**tx, "transaction_id": tx["transaction_id"] + 1, "terminal_id": 10**12}

    response = _post(served, {"transactions": [tx, stranger]})

    assert response.status_code == 200
    first, second = response.json()["predictions"]
    assert first["features_missing"] == ["customer_spending"]
    assert sorted(second["features_missing"]) == ["customer_spending", "terminal_risk"]
    assert 0.0 <= second["fraud_probability"] <= 1.0


def test_health_and_prometheus_metrics(served, serving_home):
    _post(served, served_transactions(serving_home.settings, 1)[0])

    assert httpx.get(f"{served.url}/livez").status_code == 200
    assert httpx.get(f"{served.url}/readyz").status_code == 200
    metrics = httpx.get(f"{served.url}/metrics").text
    assert 'evergreen_request_total{endpoint="/predict",http_response_code="200"' in metrics
    assert "evergreen_request_duration_seconds_bucket" in metrics


def _published_schema(served, status: int) -> dict:
    """The JSON schema the service's own OpenAPI document gives for ``/predict``'s answer."""
    document = httpx.get(f"{served.url}/docs.json", timeout=30).json()
    response = document["paths"]["/predict"]["post"]["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


def _conforms(served, response: httpx.Response) -> None:
    import jsonschema

    schema = _published_schema(served, response.status_code)
    resolver_root = {"components": schema.pop("components"), **schema}
    jsonschema.validate(response.json(), resolver_root)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"transaction_id": 2**63}, "transaction_id"),  # SQLite overflow: was a 500
        ({"customer_id": int("9" * 400)}, "customer_id"),  # a 400-digit id: was logged, lost
        ({"tx_datetime": "0001-01-01T00:00:00Z"}, "tx_datetime"),  # date overflow: was a 500
        ({"tx_datetime": "9999-12-31T23:59:59-01:00"}, "tx_datetime"),  # no UTC form: a 500
        ({"tx_datetime": 1_600_000_000}, "tx_datetime"),  # a number is not a time
        ({"amount": "12"}, "amount"),  # lax parsing took these
        ({"amount": True}, "amount"),
        ({"transaction_id": "12"}, "transaction_id"),
        ({"transaction_id": 12.0}, "transaction_id"),
        ({"tx_datetime": "2017-01-01T00:00:00Z"}, "tx_datetime"),  # before the served days
        ({"tx_datetime": "2099-12-31T00:00:00Z"}, "tx_datetime"),  # after them
    ],
)
def test_hostile_values_get_a_400_the_published_schema_describes(
    served, serving_home, change, field
):
    tx = {**served_transactions(serving_home.settings, 1)[0], **change}

    response = _post(served, {"transactions": [tx]})

    assert response.status_code == 400, response.text
    assert response.json()["detail"][0]["loc"] == ["transactions", 0, field]
    _conforms(served, response)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "multipart/form-data", "application/x-www-form-urlencoded", None],
)
def test_a_body_that_is_not_json_gets_a_415_not_a_500(served, serving_home, content_type):
    import json

    tx = served_transactions(serving_home.settings, 1)[0]
    headers = {"content-type": content_type} if content_type else {}

    response = httpx.post(
        f"{served.url}/predict", content=json.dumps(tx).encode(), headers=headers, timeout=30
    )

    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["detail"]
    _conforms(served, response)


def test_a_valid_answer_matches_the_published_schema(served, serving_home):
    response = _post(served, served_transactions(serving_home.settings, 1)[0])

    assert response.status_code == 200
    _conforms(served, response)


def test_clients_cannot_grow_the_prediction_logs_day_folders(served, serving_home):
    """Years 2 to 9999 made 1,606 ``predictions/date=*`` folders; now only served days can."""
    from evergreen.serving.runtime import served_days

    settings = serving_home.settings
    tx = served_transactions(settings, 1)[0]
    for year in (1971, 2000, 2017, 2040, 2099):
        _post(served, {**tx, "tx_datetime": f"{year}-06-01T00:00:00Z"})

    first, last = served_days(settings)
    days = [p.name.removeprefix("date=") for p in settings.predictions_dir.glob("date=*")]
    assert days and all(first.isoformat() <= d <= last.isoformat() for d in days), days
