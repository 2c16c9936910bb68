"""The one settings object: every path Evergreen writes to derives from ``EVERGREEN_HOME``.

Where a setting comes from, highest first (the one documented place; the README's
configuration section says the same):

1. keyword arguments (the resource passes its ``home``);
2. ``EVERGREEN_*`` environment variables;
3. ``$EVERGREEN_HOME/evergreen.yaml``, the home's own settings (``write_home_settings``: the
   demo records its plan there, so a later ``make ui`` on that home sees the same dates and
   windows);
4. the defaults below.

Both readers, the partition definitions built when the code location loads (``get_settings``)
and the resource an asset body asks (``EvergreenResource.settings``), resolve through these
same sources, so they agree on a home's settings; nothing edits ``os.environ`` to pass them.
"""

from __future__ import annotations

import datetime as dt
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

HOME_SETTINGS_FILE = "evergreen.yaml"


class ReplicaHost(BaseModel):
    """A host serving replicas: the address it listens on (and the router dials) and the
    command prefix that runs a process there (``ip netns exec NS``; empty: this machine)."""

    address: str = "127.0.0.1"
    launcher: list[str] = Field(default_factory=list)
    home: str | None = Field(
        default=None,
        description="The host's own EVERGREEN_HOME for its replicas (their BentoML homes); "
        "needs the shared store, where their prediction log goes. Default: the controller's.",
    )


def settings_home(home: Path | str | None = None) -> Path:
    """The home a settings object will have: the argument, ``EVERGREEN_HOME``, or ./.evergreen."""
    return Path(home or os.environ.get("EVERGREEN_HOME") or Path.cwd() / ".evergreen")


class EvergreenSettings(BaseSettings):
    """Configuration, overridable by ``EVERGREEN_*`` environment variables."""

    # An empty variable (``EVERGREEN_HOME=``, a shell's unset-by-mistake) is no value: without
    # this, an empty home is the working directory, and the state lands in the checkout.
    model_config = SettingsConfigDict(
        env_prefix="EVERGREEN_", extra="ignore", env_ignore_empty=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then the home's ``evergreen.yaml``."""
        home = settings_home(init_settings.init_kwargs.get("home"))
        home_file = YamlConfigSettingsSource(settings_cls, yaml_file=home / HOME_SETTINGS_FILE)
        return init_settings, env_settings, home_file

    home: Path = Field(
        default_factory=lambda: Path.cwd() / ".evergreen",
        description="Root of all state: landing zone, warehouse, quarantine, registry, logs.",
    )

    # Where state lives: `local` (files under the home, the default) or `cluster` (PostgreSQL,
    # Redis and a shared store; README "At cluster scale").
    profile: Literal["local", "cluster"] = Field(
        default="local",
        description="local: every store is a file under the home; cluster: Dagster storage, "
        "the ledger and Feast's registry on PostgreSQL, runs on Celery workers and Feast's "
        "online store on Redis, artifacts on the shared store.",
    )
    postgres_url: str | None = Field(
        default=None,
        description="The cluster's PostgreSQL (postgresql://user[:password]@host:port/db).",
    )
    redis_url: str | None = Field(
        default=None,
        description="The cluster's Redis (redis://host:port/db): Celery's broker "
        "and Feast's online store.",
    )
    shared_store: Path | None = Field(
        default=None,
        description="The cluster's shared artifact store (a mount every host sees): features, "
        "training sets, models, bentos, reports. None: the home.",
    )
    feast_online_store: dict[str, Any] | None = Field(
        default=None,
        description="Feast's `online_store:` block replacing Evergreen's SQLite store (any store "
        "Feast supports, e.g. {type: redis, connection_string: 'host:port'}); none: the "
        "profile's store.",
    )
    start_date: dt.date = Field(
        default=dt.date(2018, 4, 1), description="First daily partition (the simulator's start)."
    )
    end_date: dt.date | None = Field(
        default=None, description="Last daily partition, exclusive; none means up to today."
    )
    label_delay_days: int = Field(default=7, ge=0, description="Days until a label lands.")
    seed: int = Field(default=0, description="Seed for everything random.")

    volume_history_days: int = Field(default=28, ge=1, description="Trailing days for the band.")
    volume_min_history_days: int = Field(
        default=7, ge=1, description="Days before the band applies."
    )
    volume_band_mads: float = Field(default=5.0, gt=0, description="Band half-width in MADs.")
    volume_band_min_fraction: float = Field(
        default=0.25, gt=0, description="Band half-width never narrower than this share of median."
    )
    duplicate_lookback_days: int = Field(
        default=7, ge=0, description="Days before a partition searched for repeated ids."
    )
    label_lookback_days: int = Field(
        default=90, ge=1, description="How old a transaction a label may refer to."
    )
    training_window_days: int = Field(
        default=28, ge=1, description="Days of labelled transactions in a training set."
    )

    # Model layer: the training set's newest days are held out; neither model trains on them.
    evaluation_days: int = Field(
        default=7, ge=1, description="Newest days of a training set held out for evaluation."
    )
    validation_days: int = Field(
        default=4, ge=1, description="Days before the evaluation days used for early stopping."
    )
    # While a drift is confirmed (``RetrainGovernor.drift_episode``), training adapts: fewer
    # held-out days, validation on a sample of customers instead of days, the drift's days
    # weighted up (``evergreen.models.training.Adaptation``).
    drift_evaluation_days: int = Field(
        default=1, ge=1, description="Newest days held out for evaluation while a drift lasts."
    )
    drift_validation_share: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="While a drift lasts: share of customers whose older days validate.",
    )
    drift_recent_weight: float = Field(
        default=10.0, ge=1, description="While a drift lasts: weight of its days in training."
    )

    # Serving and rollout.
    serve_host: str = Field(default="127.0.0.1", description="The router's serving address.")
    serve_port: int = Field(default=8080, description="The router's serving port.")
    reports_port: int = Field(
        default=3001,
        description="Where `evergreen ui` serves the reports folder over HTTP (loopback), so "
        "the Dagster UI's links to Evidently reports and plots open in the browser.",
    )
    serve_p99_budget_ms: float = Field(
        default=100.0,
        gt=0,
        description="p99 latency a bento must meet in infra validation, and the edge's p99 "
        "budget the ServingLatencyP99 page watches.",
    )
    infra_validation_requests: int = Field(
        default=200, ge=10, description="Infra validation: recent transactions replayed."
    )
    container_base_image: str | None = Field(
        default=None,
        description="Bento image base (e.g. a local python3.11 image); none: BentoML's default.",
    )
    deploy_target: Literal["process", "container", "hosts"] = Field(
        default="process",
        description="Where new revisions run: `bentoml serve` processes, containers of each "
        "bento's image (built by `evergreen bento containerize` or the deployment asset), or "
        "`bentoml serve` processes on the `deploy_hosts`.",
    )
    deploy_hosts: list[ReplicaHost] = Field(
        default_factory=list,
        description="The hosts of the `hosts` target, replica i on host i modulo their number: "
        'JSON, e.g. [{"address": "10.0.0.11", "launcher": ["ip", "netns", "exec", "h1"]}]: '
        "the address the replica listens on and the router dials, and the command prefix that "
        "runs a process on that host.",
    )
    container_engine: str = Field(
        default="podman", description="The container engine of the container target."
    )
    container_wheels_dir: Path | None = Field(
        default=None,
        description="Wheels the bento image installs from, offline; none: it installs from PyPI.",
    )

    # The continuous loop's monitors (sensors/): all counted in data days, not wall-clock time.
    drift_sample_rows: int = Field(
        default=5000, ge=100, description="Rows sampled per side (reference, day) for drift."
    )
    performance_window_days: int = Field(
        default=7, ge=1, description="Transaction days of matured labels judged for live AP."
    )
    monitor_min_frauds: int = Field(
        default=20, ge=1, description="Matured frauds needed before live AP is judged."
    )
    retrain_floor_days: int = Field(
        default=7, ge=1, description="A champion whose cut-off is older than this is retrained."
    )
    promotion_watch_days: int = Field(
        default=3, ge=1, description="Production days whose matured labels confirm a champion."
    )

    @model_validator(mode="after")
    def _cluster_needs_its_servers(self) -> EvergreenSettings:
        if self.profile == "cluster":
            missing = [
                f"EVERGREEN_{name.upper()}"
                for name in ("postgres_url", "redis_url")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(f"profile cluster needs {' and '.join(missing)}")
        return self

    @property
    def is_cluster(self) -> bool:
        return self.profile == "cluster"

    @property
    def postgres_sqlalchemy_url(self) -> str:
        """``postgres_url`` with the driver SQLAlchemy should use (psycopg2)."""
        url = self.postgres_url or ""
        scheme, sep, rest = url.partition("://")
        if sep and scheme in ("postgresql", "postgres"):
            return f"postgresql+psycopg2://{rest}"
        return url

    @property
    def ingest_root(self) -> Path:
        """Where the landing zone, quarantine and raw partitions live: the home, or on the
        cluster profile the shared store, so that whichever worker host takes a partition's
        step finds its delivered files and every host reads every partition."""
        return self.artifacts_root if self.is_cluster else self.home

    @property
    def landing_dir(self) -> Path:
        return self.ingest_root / "landing"

    @property
    def quarantine_dir(self) -> Path:
        return self.ingest_root / "quarantine"

    @property
    def raw_dir(self) -> Path:
        """The cluster profile's raw tables: one Parquet file per partition, written by the one
        step that makes it (``evergreen.warehouse``); unused on the local profile."""
        return self.ingest_root / "raw"

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse" / "evergreen.duckdb"

    @property
    def registry_dir(self) -> Path:
        return self.home / "registry"

    @property
    def dagster_storage_dir(self) -> Path:
        """Dagster's artifact storage on the cluster profile (what its IO manager and compute
        logs write): on the shared store, so a step's output is read on any worker host."""
        return self.artifacts_root / "dagster_storage"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def artifacts_root(self) -> Path:
        """Where artifacts go: the shared store every host mounts (``shared_store``), else the
        home. Features, training sets, models, bentos and reports live here; each file is
        written by the one step that makes it (a partition, a cut-off, a model version), through
        a temporary name of its own host and process, then renamed."""
        return self.shared_store or self.home

    @property
    def features_dir(self) -> Path:
        """Feature tables as Parquet, ``<table>/date=YYYY-MM-DD/``: Feast's offline store."""
        return self.artifacts_root / "features"

    @property
    def feast_dir(self) -> Path:
        """Feast's state: the registry and the online store."""
        return self.home / "feast"

    @property
    def feast_registry_path(self) -> Path:
        return self.feast_dir / "registry.db"

    @property
    def online_store_path(self) -> Path:
        return self.feast_dir / "online_store.db"

    @property
    def training_sets_dir(self) -> Path:
        """Training sets as Parquet, one file per cut-off day."""
        return self.artifacts_root / "training_sets"

    def training_set_path(self, cutoff: dt.date | str) -> Path:
        """The training set file of a cut-off day (the ``training_set`` asset writes it)."""
        day = cutoff.isoformat() if isinstance(cutoff, dt.date) else cutoff
        return self.training_sets_dir / f"cutoff={day}" / "training_set.parquet"

    @property
    def bentoml_home(self) -> Path:
        """BentoML's home: its model store (the registry's artifacts) and built bentos."""
        return self.artifacts_root / "registry" / "bentoml"

    @property
    def ledger_path(self) -> Path:
        """The append-only ledger (SQLite): every model, status change and rollout step."""
        return self.registry_dir / "ledger.db"

    @property
    def reports_dir(self) -> Path:
        """HTML reports (Evidently) and plots linked from asset metadata."""
        return self.artifacts_root / "reports"

    @property
    def reports_url(self) -> str:
        """The HTTP address of ``reports_dir`` while ``evergreen ui`` runs."""
        return f"http://127.0.0.1:{self.reports_port}"

    @property
    def predictions_dir(self) -> Path:
        """The prediction log written by serving replicas: a file per process, on the shared
        store when there is one, so the canary's analysis and ``live_predictions`` on any host
        read what replicas on every host logged."""
        return self.artifacts_root / "predictions"

    @property
    def serving_dir(self) -> Path:
        """The rollout supervisor's state: revisions, their logs, the router config."""
        return self.home / "serving"

    @property
    def observe_dir(self) -> Path:
        """``evergreen observe``'s Prometheus and Alertmanager: configuration, data, logs."""
        return self.home / "observe"

    def ensure_dirs(self) -> EvergreenSettings:
        """Create the state folders; returns self for chaining."""
        for path in (
            self.landing_dir,
            self.quarantine_dir,
            self.warehouse_path.parent,
            self.registry_dir,
            self.logs_dir,
            self.dagster_home,
        ):
            path.mkdir(parents=True, exist_ok=True)
        return self


def write_home_settings(home: Path, values: dict[str, object]) -> Path:
    """Record settings in ``home``'s ``evergreen.yaml`` (validated first: a bad value is refused
    here, not when a run reads it); the environment still wins over what is recorded."""
    EvergreenSettings(home=home, **values)
    path = Path(home) / HOME_SETTINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({k: _plain(v) for k, v in values.items()}, sort_keys=True))
    return path


def _plain(value: object) -> object:
    return str(value) if isinstance(value, (Path, dt.date)) else value


@lru_cache(maxsize=1)
def get_settings() -> EvergreenSettings:
    """The process-wide settings, read once (environment, then the home's file)."""
    return EvergreenSettings()
