"""The Dagster instance Evergreen runs on: its home under EVERGREEN_HOME and its config."""

from __future__ import annotations

import os
from pathlib import Path

from evergreen.settings import EvergreenSettings

# One warehouse writer at a time (DuckDB's rule), enforced by Dagster at the op level.
INSTANCE_YAML = """\
concurrency:
  runs:
    max_concurrent_runs: 4
  pools:
    default_limit: 1
    granularity: op
telemetry:
  enabled: false
"""


def ensure_instance(settings: EvergreenSettings) -> Path:
    """Create DAGSTER_HOME with Evergreen's dagster.yaml (kept if a user edited it)."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)
    # Dagster's first-visit newsletter dialog covers the asset graph; this is a tool, not a trial.
    nux = home / ".nux" / "nux.yaml"
    if not nux.exists():
        nux.parent.mkdir(exist_ok=True)
        nux.write_text("seen: 1\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return home
