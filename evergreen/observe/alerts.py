"""The alerts Alertmanager delivered, in the ledger's append-only ``alerts`` table.

Alertmanager posts a notification (its webhook format, version 4) for a group of alerts each
time the group changes, and again every ``repeat_interval`` while it fires. Each alert in it is
one row per state it reached: ``firing`` when it started, ``resolved`` when it ended; a repeated
notification of an alert already recorded in that state adds nothing. An alert is keyed by its
fingerprint and start time (``startsAt``): the same rule firing again later is a new alert.
The row keeps which receiver the route chose (``page-serving``, ``ticket-data``...), so the
ledger shows who was told, not only what fired.

An alert is open while its newest row is ``firing``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from evergreen.settings import EvergreenSettings

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT,
    status TEXT NOT NULL CHECK (status IN ('firing', 'resolved')),
    alertname TEXT NOT NULL,
    severity TEXT NOT NULL,
    owner TEXT NOT NULL,
    receiver TEXT NOT NULL,
    summary TEXT NOT NULL,
    runbook TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_key ON alerts (fingerprint, starts_at, id);
"""
STATUSES = ("firing", "resolved")


class BadNotification(ValueError):
    """The body is not an Alertmanager webhook notification; the message says why."""


@dataclass(frozen=True)
class AlertRow:
    """One state an alert reached, as the ledger keeps it."""

    id: int
    received_at: str
    fingerprint: str
    starts_at: str
    ends_at: str | None
    status: str
    alertname: str
    severity: str
    owner: str
    receiver: str
    summary: str
    runbook: str
    labels: dict
    annotations: dict

    def to_dict(self) -> dict:
        return asdict(self)


def _connect(settings: EvergreenSettings):
    from evergreen.models.ledger import ledger

    return ledger(settings, SCHEMA)


def _parsed(payload: object) -> tuple[str, list[dict]]:
    """(receiver, alerts) of a notification, or ``BadNotification``."""
    if not isinstance(payload, dict):
        raise BadNotification("the body must be a JSON object (Alertmanager's webhook format)")
    receiver, alerts = payload.get("receiver"), payload.get("alerts")
    if not isinstance(receiver, str) or not receiver:
        raise BadNotification("'receiver' must be a non-empty string")
    if not isinstance(alerts, list):
        raise BadNotification("'alerts' must be a list")
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise BadNotification(f"alerts[{i}] must be an object")
        for key in ("status", "fingerprint", "startsAt"):
            if not isinstance(alert.get(key), str) or not alert.get(key):
                raise BadNotification(f"alerts[{i}].{key} must be a non-empty string")
        if alert["status"] not in STATUSES:
            raise BadNotification(f"alerts[{i}].status must be one of {', '.join(STATUSES)}")
        for key in ("labels", "annotations"):
            if not isinstance(alert.get(key, {}), dict):
                raise BadNotification(f"alerts[{i}].{key} must be an object")
    return receiver, alerts


def record_notification(settings: EvergreenSettings, payload: object) -> int:
    """Record the alerts of one webhook notification (``BadNotification`` when it is not
    one); returns how many rows were added (0 for a repeat)."""
    from evergreen.models.ledger import now, write

    receiver, alerts = _parsed(payload)

    def insert_new(conn) -> int:
        added = 0
        for alert in alerts:
            labels, annotations = alert.get("labels") or {}, alert.get("annotations") or {}
            key = (alert["fingerprint"], alert["startsAt"], alert["status"])
            seen = conn.execute(
                "SELECT 1 FROM alerts WHERE fingerprint = ? AND starts_at = ? AND status = ?",
                key,
            ).fetchone()
            if seen:
                continue
            ends = alert.get("endsAt") if alert["status"] == "resolved" else None
            conn.execute(
                "INSERT INTO alerts (received_at, fingerprint, starts_at, ends_at, status, "
                "alertname, severity, owner, receiver, summary, runbook, labels, annotations) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    now(),
                    *key[:2],
                    ends,
                    alert["status"],
                    str(labels.get("alertname", "")),
                    str(labels.get("severity", "")),
                    str(labels.get("owner", "")),
                    receiver,
                    str(annotations.get("summary", "")),
                    str(annotations.get("runbook", "")),
                    json.dumps(labels, sort_keys=True),
                    json.dumps(annotations, sort_keys=True),
                ],
            )
            added += 1
        return added

    return write(lambda: _connect(settings), insert_new)


def _row(r) -> AlertRow:
    data = dict(zip(r.keys(), r, strict=True))
    data["labels"], data["annotations"] = (
        json.loads(data["labels"]),
        json.loads(data["annotations"]),
    )
    return AlertRow(**data)


def alert_history(settings: EvergreenSettings, limit: int | None = None) -> list[AlertRow]:
    """Every recorded state of every alert, oldest first (the newest ``limit``)."""
    with _connect(settings) as conn:
        rows = [_row(r) for r in conn.execute("SELECT * FROM alerts ORDER BY id")]
    return rows[-limit:] if limit else rows


def open_alerts(settings: EvergreenSettings) -> list[AlertRow]:
    """Alerts whose newest state is ``firing``, page before ticket, oldest first."""
    return still_firing(alert_history(settings))


def still_firing(rows: Iterable[AlertRow]) -> list[AlertRow]:
    """Of recorded states (oldest first), the alerts whose newest state is ``firing``."""
    newest: dict[tuple[str, str], AlertRow] = {}
    for row in rows:
        newest[(row.fingerprint, row.starts_at)] = row
    firing = [r for r in newest.values() if r.status == "firing"]
    return sorted(firing, key=lambda r: (r.severity != "page", r.starts_at))
