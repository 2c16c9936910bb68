"""The cluster profile's Dagster instance: storage on a real (throwaway) PostgreSQL through
dagster-postgres, run retries on; the local profile's dagster.yaml unchanged."""

from __future__ import annotations

import yaml

from evergreen.instance import INSTANCE_YAML, instance_yaml
from evergreen.settings import EvergreenSettings


def test_local_profile_keeps_its_instance(tmp_path):
    assert instance_yaml(EvergreenSettings(home=tmp_path)) == INSTANCE_YAML
    assert "storage" not in yaml.safe_load(INSTANCE_YAML)


def test_cluster_instance_stores_runs_in_postgres(tmp_path, postgres_db):
    from dagster import DagsterInstance, job, op
    from dagster_postgres import PostgresRunStorage

    settings = EvergreenSettings(
        home=tmp_path, profile="cluster", postgres_url=postgres_db, redis_url="redis://h:1/0"
    )
    (tmp_path / "dagster.yaml").write_text(instance_yaml(settings))

    @op
    def one() -> int:
        return 1

    @job
    def tiny():
        one()

    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        result = tiny.execute_in_process(instance=instance)
        assert result.success
    # Another process (here: another instance on the same database) sees the run.
    with DagsterInstance.from_config(str(tmp_path)) as again:
        assert again.get_run_by_id(result.run_id).is_success
