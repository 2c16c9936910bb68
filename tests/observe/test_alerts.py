"""The alert record: Alertmanager's webhook notifications land in the ledger's append-only
``alerts`` table once per state (firing, resolved), over real HTTP to Evergreen's endpoint;
`evergreen alerts` lists them and the ``open_alerts`` sensor says the open ones."""

from __future__ import annotations

import json
import threading
from wsgiref.simple_server import make_server

import httpx
import pytest
from dagster import SkipReason, build_sensor_context
from typer.testing import CliRunner

from evergreen.cli import app
from evergreen.models.ledger import ledger
from evergreen.observe.alerts import SCHEMA, BadNotification, alert_history, open_alerts
from evergreen.observe.alerts import record_notification as record
from evergreen.observe.loop_metrics import loop_registry
from evergreen.observe.stack import _QuietHandler, _Server, evergreen_app
from evergreen.ports import LOOPBACK, free_port
from evergreen.resources import EvergreenResource
from evergreen.settings import EvergreenSettings, get_settings
from sensors.alerts_sensor import open_alerts_sensor

STARTS = "2026-12-02T14:00:00.000Z"


def notification(status: str, name="ServingErrorRate", severity="page", owner="serving") -> dict:
    """A notification as Alertmanager 0.25 posts it (webhook version 4)."""
    alert = {
        "status": status,
        "labels": {"alertname": name, "severity": severity, "owner": owner},
        "annotations": {"summary": "12% of requests answered 5xx", "runbook": "roll back"},
        "startsAt": STARTS,
        "endsAt": "2026-12-02T14:05:00.000Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "fingerprint": f"fp-{name}",
        "generatorURL": "http://127.0.0.1:9090/graph",
    }
    return {
        "version": "4",
        "status": status,
        "receiver": f"{severity}-{owner}",
        "groupKey": "{}:{}",
        "alerts": [alert],
    }


@pytest.fixture
def home(tmp_path) -> EvergreenSettings:
    return EvergreenSettings(home=tmp_path / "home").ensure_dirs()


@pytest.fixture
def endpoint(home):
    """Evergreen's endpoint (metrics and alert receiver) on a free loopback port."""
    server = make_server(
        LOOPBACK,
        free_port(),
        evergreen_app(home, loop_registry(home)),
        server_class=_Server,
        handler_class=_QuietHandler,
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{LOOPBACK}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_each_state_is_recorded_once_and_resolution_closes_it(home, endpoint):
    post = lambda body: httpx.post(f"{endpoint}/alerts", json=body, timeout=5)  # noqa: E731
    assert post(notification("firing")).json() == {"recorded": 1}
    assert post(notification("firing")).json() == {"recorded": 0}  # a repeat: nothing new
    [opened] = open_alerts(home)
    assert (opened.alertname, opened.receiver, opened.owner) == (
        "ServingErrorRate",
        "page-serving",
        "serving",
    )

    assert post(notification("resolved")).json() == {"recorded": 1}

    assert open_alerts(home) == []
    states = [(r.status, r.ends_at) for r in alert_history(home)]
    assert states == [("firing", None), ("resolved", "2026-12-02T14:05:00.000Z")]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"not json", "Expecting value"),
        (b"[]", "JSON object"),
        (json.dumps({"receiver": "x", "alerts": [{"status": "odd"}]}).encode(), "fingerprint"),
        (
            json.dumps(
                {**notification("firing"), "alerts": [{**notification("x")["alerts"][0]}]}
            ).encode(),
            "status must be one of",
        ),
    ],
)
def test_a_bad_notification_gets_a_400_that_says_why_and_records_nothing(
    home, endpoint, body, words
):
    answer = httpx.post(f"{endpoint}/alerts", content=body, timeout=5)
    assert answer.status_code == 400
    assert words in answer.json()["error"]
    assert alert_history(home) == []


def test_the_alerts_table_is_append_only(home):
    record(home, notification("firing"))
    with ledger(home, SCHEMA) as conn, pytest.raises(Exception, match="append-only"):
        conn.execute("UPDATE alerts SET status = 'resolved'")
    with pytest.raises(BadNotification):
        record(home, {"receiver": "", "alerts": []})


def test_cli_lists_history_and_open_alerts(home, monkeypatch):
    record(home, notification("firing"))
    record(home, notification("firing", "DataLate", "ticket", "data"))
    record(home, notification("resolved"))
    monkeypatch.setenv("EVERGREEN_HOME", str(home.home))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        every = json.loads(runner.invoke(app, ["alerts", "--json"]).output)
        still = json.loads(runner.invoke(app, ["alerts", "--open", "--json"]).output)
        table = runner.invoke(app, ["alerts", "--open"]).output
    finally:
        get_settings.cache_clear()
    assert [(r["alertname"], r["status"]) for r in every] == [
        ("ServingErrorRate", "firing"),
        ("DataLate", "firing"),
        ("ServingErrorRate", "resolved"),
    ]
    assert [(r["alertname"], r["receiver"]) for r in still] == [("DataLate", "ticket-data")]
    assert "DataLate" in table and "ServingErrorRate" not in table


def test_the_sensor_says_the_open_alerts_page_first(home):
    context = build_sensor_context(resources={"evergreen": EvergreenResource(home=str(home.home))})
    assert "No open alert" in open_alerts_sensor(context).skip_message
    record(home, notification("firing", "DataLate", "ticket", "data"))
    record(home, notification("firing", "NoRevisionReady", "page", "serving"))

    said = open_alerts_sensor(context)

    assert isinstance(said, SkipReason)
    message = said.skip_message
    assert message.startswith("2 open alert(s)")
    assert message.index("[page -> serving] NoRevisionReady") < message.index("DataLate")
    assert "Runbook: roll back" in message
