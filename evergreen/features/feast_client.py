"""Feast helpers: the store bound to a settings home, apply, materialize, online reads.

Imports Feast: import this module only inside asset bodies, tests and benchmarks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import os
from dataclasses import dataclass

import yaml
from feast import FeatureService, FeatureStore, RepoConfig
from feast.project import Project
from feast.repo_contents import RepoContents
from feast.repo_operations import apply_total_with_repo_instance

from evergreen.features.feast_objects import FeastDefinitions, feast_definitions
from evergreen.features.online_reader import OnlineReader as OnlineReader  # the public home
from evergreen.features.realtime import is_realtime
from evergreen.features.repo import (
    FEATURE_REPO,
    FEATURE_SERVICE,
    FEATURE_STORE_YAML,
    definitions_version,
)
from evergreen.features.tables import known_at
from evergreen.library_notes import silence_library_notes
from evergreen.settings import EvergreenSettings

log = logging.getLogger(__name__)
silence_library_notes()  # again: importing Feast put its own filter in front

_APPLIED_MARKER = "applied.json"


def repo_config(settings: EvergreenSettings) -> RepoConfig:
    """feature_store.yaml with ``${EVERGREEN_HOME}`` bound to this settings' home (as Feast's
    own loader does with the environment variable), and the stores the settings name in place
    of the file's (``store_overrides``)."""
    text = FEATURE_STORE_YAML.read_text().replace("${EVERGREEN_HOME}", str(settings.home.resolve()))
    values = yaml.safe_load(os.path.expandvars(text)) | store_overrides(settings)
    config = RepoConfig(**values)
    config.repo_path = FEATURE_REPO
    return config


def store_overrides(settings: EvergreenSettings) -> dict:
    """feature_store.yaml blocks the settings replace: ``feast_online_store`` (any store Feast
    supports) or, on the cluster profile, Redis; on the cluster profile the registry is Feast's
    SQL registry on PostgreSQL. The local profile changes nothing."""
    overrides: dict = {}
    if settings.feast_online_store:
        overrides["online_store"] = dict(settings.feast_online_store)
    elif settings.is_cluster:
        overrides["online_store"] = redis_online_store(settings.redis_url or "")
    if settings.is_cluster:
        overrides["registry"] = {
            "registry_type": "sql",
            "path": settings.postgres_sqlalchemy_url,
            "cache_ttl_seconds": 60,
            "sqlalchemy_config_kwargs": {"pool_pre_ping": True},
        }
    return overrides


def redis_online_store(url: str) -> dict:
    """Feast's Redis online store block for ``redis://[:password@]host:port[/db]`` (Feast takes
    ``host:port,db=N,password=...``, not a URL)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(f"not a redis:// URL: {url!r}")
    connection = [f"{parts.hostname}:{parts.port or 6379}"]
    if parts.path.strip("/"):
        connection.append(f"db={int(parts.path.strip('/'))}")
    if parts.password:
        connection.append(f"password={parts.password}")
    if parts.scheme == "rediss":
        connection.append("ssl=true")
    return {"type": "redis", "connection_string": ",".join(connection)}


def feature_store(settings: EvergreenSettings) -> FeatureStore:
    """The Feast store of this home (registry and online store under ``settings.feast_dir``)."""
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(FEATURE_REPO), config=repo_config(settings))


@dataclass(frozen=True)
class ApplyReport:
    """What ``apply_definitions`` did."""

    applied: bool
    version: str
    registry_diff: str
    definitions: FeastDefinitions


def _repo_contents(project: str, definitions: FeastDefinitions) -> RepoContents:
    from feast.feature_view import DUMMY_ENTITY

    sources = {}
    for view in definitions.feature_views:
        for source in (view.batch_source, view.stream_source):
            if source is not None:
                sources.setdefault(source.name, source)
    return RepoContents(
        projects=[Project(name=project)],
        data_sources=list(sources.values()),
        feature_views=definitions.feature_views,
        on_demand_feature_views=definitions.on_demand_feature_views,
        stream_feature_views=[],
        label_views=[],
        entities=[*definitions.entities, DUMMY_ENTITY],
        feature_services=[definitions.feature_service],
        permissions=[],
    )


def applied_version(settings: EvergreenSettings) -> str | None:
    """The definitions version last applied to this home's registry, if any (on the cluster
    profile, the version tag of the FeatureService in the shared SQL registry)."""
    if settings.is_cluster:
        try:
            service = feature_store(settings).get_feature_service(FEATURE_SERVICE)
        except Exception:  # nothing applied yet (Feast raises its own not-found errors)
            return None
        return service.tags.get("version")
    marker = settings.feast_dir / _APPLIED_MARKER
    if not marker.exists() or not settings.feast_registry_path.exists():
        return None
    return json.loads(marker.read_text())["version"]


def apply_definitions(settings: EvergreenSettings, force: bool = False) -> ApplyReport:
    """``feast apply`` of the definitions, skipped when this version is already applied."""
    definitions = feast_definitions(settings.features_dir)
    version = definitions_version()
    if not force and applied_version(settings) == version:
        return ApplyReport(False, version, "", definitions)
    store = feature_store(settings)
    repo = _repo_contents(store.project, definitions)
    registry_diff, _, _ = store.plan(repo)
    apply_total_with_repo_instance(
        store, store.project, store.registry, repo, skip_source_validation=True
    )
    marker = {"version": version, "applied_at": dt.datetime.now(dt.UTC).isoformat()}
    (settings.feast_dir / _APPLIED_MARKER).write_text(json.dumps(marker))
    return ApplyReport(True, version, registry_diff.to_string(), definitions)


def materialize_day(store: FeatureStore, day: dt.date, views: list[str] | None = None) -> None:
    """Load the feature rows of ``day`` (event time = the next midnight) into the online store:
    the daily views (``views`` None) or those named; the request-time views have no rows to
    load (their state is written by serving and ``reconcile_day``).

    Feast prints its progress to stdout, a dozen lines per day in the terminal of ``make
    demo``; they go to the debug log (the asset's metadata says what was loaded)."""
    at = known_at(day)
    if views is None:
        views = [v.name for v in store.list_feature_views() if not is_realtime(v)]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        store.materialize(start_date=at, end_date=at, feature_views=views)
    if printed.getvalue().strip():
        log.debug("feast materialize %s: %s", day, printed.getvalue().strip())


def newest_online(store: FeatureStore) -> dt.datetime | None:
    """The latest event time any feature view has been materialized up to, if any."""
    ends = [
        end
        for fv in store.list_feature_views()
        if not is_realtime(fv)
        for _, end in fv.materialization_intervals
    ]
    return max(ends, default=None)


def fraud_feature_service(store: FeatureStore) -> FeatureService:
    """The FeatureService that both training and serving read."""
    return store.get_feature_service(FEATURE_SERVICE)
