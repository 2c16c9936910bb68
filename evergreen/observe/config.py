"""Prometheus's and Alertmanager's configuration files, rendered from one ``ObserveConfig``.

Prometheus scrapes three jobs: ``replica`` (each replica's BentoML ``/metrics``) and ``caddy``
(the edge's and router's metrics servers), both from the files the rollout rewrites
(``evergreen.rollout.scrape_targets``), and ``evergreen`` (the loop's metrics and the alert
receiver, served by ``evergreen observe`` itself). Alertmanager routes every alert by
``severity`` and ``owner`` to a receiver named ``<severity>-<owner>`` (``page-serving``,
``ticket-data``...): each is a webhook to Evergreen's receiver, which records the alert in the
ledger with the receiver's name. A team that pages through a pager service replaces the page
receivers' ``webhook_configs`` with its own; the routes stay. An alert without those labels
goes to ``unrouted``, recorded as such rather than lost. While ``NoRevisionReady`` fires, the
other serving alerts it causes are held back (an inhibit rule): one page, not three.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from evergreen.observe.rules import OWNERS, SEVERITIES, RuleTiming, Thresholds
from evergreen.rollout.scrape_targets import REPLICAS_FILE, ROUTERS_FILE


@dataclass(frozen=True)
class AlertRouting:
    """Alertmanager's patience: ``group_wait`` before the first notification of a group,
    ``group_interval`` between updates (a resolution included), ``repeat_interval`` before a
    still-firing alert is sent again."""

    group_wait: str = "30s"
    group_interval: str = "1m"
    repeat_interval: str = "4h"

    @staticmethod
    def quick() -> AlertRouting:
        return AlertRouting(group_wait="0s", group_interval="1s", repeat_interval="1m")


@dataclass(frozen=True)
class ObserveConfig:
    """Intervals, timing and thresholds of one observe stack."""

    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    timing: RuleTiming = field(default_factory=RuleTiming)
    routing: AlertRouting = field(default_factory=AlertRouting)
    thresholds: Thresholds | None = None  # None: ``Thresholds.of(settings)``
    # Poll the target files this often too (inotify sees a change at once; this catches a
    # missed event).
    file_sd_refresh: str = "30s"

    @staticmethod
    def demo() -> ObserveConfig:
        """The demo's: days replayed in minutes, so seconds-long windows and ``for:``; pages
        wait 30 s, longer than a replica takes to start."""
        return ObserveConfig(
            scrape_interval="2s",
            evaluation_interval="2s",
            timing=RuleTiming(window="20s", page_for="30s", p99_for="60s", ticket_for="10s"),
            routing=AlertRouting(group_wait="2s", group_interval="5s", repeat_interval="1h"),
            file_sd_refresh="10s",
        )

    @staticmethod
    def quick(**thresholds) -> ObserveConfig:
        """One-second scrapes and evaluations, seconds-long ``for:``: the tests' stack."""
        return ObserveConfig(
            scrape_interval="1s",
            evaluation_interval="1s",
            timing=RuleTiming.quick(),
            routing=AlertRouting.quick(),
            thresholds=Thresholds(**thresholds) if thresholds else None,
            file_sd_refresh="5s",
        )


def receiver_name(severity: str, owner: str) -> str:
    return f"{severity}-{owner}"


def prometheus_config(
    config: ObserveConfig, scrape_dir: Path, rules: Path, exporter: str, alertmanager: str
) -> dict:
    """prometheus.yml: the three jobs, the rule file, the Alertmanager."""

    def file_sd(name: str) -> list[dict]:
        return [{"files": [str(scrape_dir / name)], "refresh_interval": config.file_sd_refresh}]

    return {
        "global": {
            "scrape_interval": config.scrape_interval,
            "scrape_timeout": config.scrape_interval,
            "evaluation_interval": config.evaluation_interval,
        },
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {"job_name": "replica", "file_sd_configs": file_sd(REPLICAS_FILE)},
            {"job_name": "caddy", "file_sd_configs": file_sd(ROUTERS_FILE)},
            {"job_name": "evergreen", "static_configs": [{"targets": [exporter]}]},
        ],
    }


def alertmanager_config(config: ObserveConfig, receiver_url: str) -> dict:
    """alertmanager.yml: a route per (severity, owner), each to Evergreen's receiver."""

    def webhook(name: str) -> dict:
        hook = {"url": receiver_url, "send_resolved": True}
        return {"name": name, "webhook_configs": [hook]}

    routes = [
        {
            "receiver": receiver_name(severity, owner),
            "matchers": [f'severity="{severity}"', f'owner="{owner}"'],
        }
        for severity in SEVERITIES
        for owner in OWNERS
    ]
    r = config.routing
    return {
        "route": {
            "receiver": "unrouted",
            "group_by": ["alertname", "severity", "owner"],
            "group_wait": r.group_wait,
            "group_interval": r.group_interval,
            "repeat_interval": r.repeat_interval,
            "routes": routes,
        },
        "receivers": [webhook("unrouted")] + [webhook(route["receiver"]) for route in routes],
        # Nothing serves: that one page says it all; the error and latency pages it causes
        # would only repeat it.
        "inhibit_rules": [
            {
                "source_matchers": ['alertname="NoRevisionReady"'],
                "target_matchers": ['owner="serving"', 'alertname!="NoRevisionReady"'],
            }
        ],
    }
