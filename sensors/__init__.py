"""Sensors that keep the assets fresh."""
