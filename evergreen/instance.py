"""The Dagster instance Evergreen runs on: its home under EVERGREEN_HOME and its config."""

from __future__ import annotations

import os
from pathlib import Path

from evergreen.settings import EvergreenSettings

MAX_CONCURRENT_RUNS = 4
RUN_RETRIES = 2  # the daemon re-launches a failed run this many times (cluster profile)

# One warehouse writer at a time (DuckDB's rule), enforced by Dagster at the op level.
INSTANCE_YAML = f"""\
concurrency:
  runs:
    max_concurrent_runs: {MAX_CONCURRENT_RUNS}
  pools:
    default_limit: 1
    granularity: op
telemetry:
  enabled: false
"""


# The cluster profile adds: runs, events, schedules on PostgreSQL (dagster-postgres), shared by
# the webserver, the daemon and every worker host; a failed run retried by the daemon.
CLUSTER_YAML = f"""\
storage:
  postgres:
    postgres_url: {{postgres_url}}
run_retries:
  enabled: true
  max_retries: {RUN_RETRIES}
  retry_on_asset_or_op_failure: true
"""


# With a shared store, what Dagster itself writes for a step (its IO manager's outputs, the
# step's stdout and stderr) goes there too: a step's output is read by the next step on any
# host, and the UI on the control plane shows the logs of a step run on a worker.
SHARED_STORAGE_YAML = """\
local_artifact_storage:
  module: dagster._core.storage.root
  class: LocalArtifactStorage
  config:
    base_dir: {storage}
compute_logs:
  module: dagster._core.storage.local_compute_log_manager
  class: LocalComputeLogManager
  config:
    base_dir: {storage}/logs
"""


def instance_yaml(settings: EvergreenSettings) -> str:
    """The dagster.yaml of the settings' profile (local: SQLite storage under DAGSTER_HOME)."""
    if not settings.is_cluster:
        return INSTANCE_YAML
    text = INSTANCE_YAML + CLUSTER_YAML.format(postgres_url=settings.postgres_sqlalchemy_url)
    if settings.shared_store is not None:
        text += SHARED_STORAGE_YAML.format(storage=settings.dagster_storage_dir)
    return text


def ensure_instance(settings: EvergreenSettings) -> Path:
    """Create DAGSTER_HOME with Evergreen's dagster.yaml for the profile (kept if a user
    edited it)."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(instance_yaml(settings))
    # Dagster's first-visit newsletter dialog covers the asset graph; this is a tool, not a trial.
    nux = home / ".nux" / "nux.yaml"
    if not nux.exists():
        nux.parent.mkdir(exist_ok=True)
        nux.write_text("seen: 1\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return home
