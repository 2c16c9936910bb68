"""The Feast repo in feature_repo/: the CLI reads it with EVERGREEN_HOME, and the definitions'
version moves exactly with what Feast would register."""

import os
import subprocess
import sys
from pathlib import Path

from evergreen.features.repo import FEATURE_REPO, FEATURE_STORE_YAML, definitions_version


def test_feast_plan_runs_from_the_repo_folder_with_evergreen_home(tmp_path):
    feast = Path(sys.executable).with_name("feast")
    env = {**os.environ, "EVERGREEN_HOME": str(tmp_path / "home")}

    done = subprocess.run(
        [str(feast), "plan"],
        cwd=FEATURE_REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert "Created feature service fraud_detection" in done.stdout
    assert (tmp_path / "home" / "feast").is_dir()  # the registry lives under EVERGREEN_HOME


def test_feature_store_yaml_keeps_every_path_under_evergreen_home():
    text = FEATURE_STORE_YAML.read_text()
    paths = [
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.strip().startswith("path:")
    ]
    assert paths and all(p.startswith("${EVERGREEN_HOME}/") for p in paths)


def test_the_stores_and_engine_are_feasts_own_extended():
    """DuckDB offline, SQLite online, the local engine: Feast's classes, subclassed through
    Feast's documented extension points."""
    import importlib

    import yaml
    from feast.infra.compute_engines.local.compute import LocalComputeEngine
    from feast.infra.offline_stores.duckdb import DuckDBOfflineStore
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    config = yaml.safe_load(FEATURE_STORE_YAML.read_text())
    expected = {
        "offline_store": DuckDBOfflineStore,
        "online_store": SqliteOnlineStore,
        "batch_engine": LocalComputeEngine,
    }
    for section, feast_class in expected.items():
        module, name = config[section]["type"].rsplit(".", 1)
        assert issubclass(getattr(importlib.import_module(module), name), feast_class), section


def test_definitions_version_is_a_stable_short_hash():
    assert definitions_version() == definitions_version()
    assert len(definitions_version()) == 12
