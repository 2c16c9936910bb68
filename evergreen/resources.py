"""Dagster resources: the one place assets get their settings from."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from evergreen.settings import EvergreenSettings, get_settings


class EvergreenResource(ConfigurableResource):
    """Evergreen's state folder; every path an asset touches derives from it."""

    home: str = Field(
        default_factory=lambda: str(get_settings().home),
        description="EVERGREEN_HOME: landing zone, warehouse, quarantine, registry, logs.",
    )

    def settings(self) -> EvergreenSettings:
        """The process settings with this resource's home."""
        return EvergreenSettings(home=Path(self.home))  # the environment as it is now
