"""Observability: the loop's metrics, Prometheus's rules, Alertmanager's routes, and the alerts
each owner received, in the ledger (``evergreen observe``, ``evergreen alerts``)."""
