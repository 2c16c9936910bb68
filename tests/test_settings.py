"""One settings object; every path lives under EVERGREEN_HOME."""

from evergreen.settings import EvergreenSettings


def test_home_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EVERGREEN_HOME", str(tmp_path))
    monkeypatch.setenv("EVERGREEN_LABEL_DELAY_DAYS", "5")
    s = EvergreenSettings()
    assert s.home == tmp_path and s.label_delay_days == 5
    for path in (
        s.landing_dir,
        s.quarantine_dir,
        s.warehouse_path,
        s.registry_dir,
        s.logs_dir,
        s.dagster_home,
    ):
        assert path.is_relative_to(tmp_path)
