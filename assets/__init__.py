"""Dagster software-defined assets, one module per layer."""
