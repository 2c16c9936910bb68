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


def test_an_empty_home_variable_is_no_home(monkeypatch, tmp_path):
    # An empty EVERGREEN_HOME must not make the working directory the home.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVERGREEN_HOME", "")
    assert EvergreenSettings().home == tmp_path / ".evergreen"


def test_the_homes_file_is_read_by_the_resource_and_the_environment_wins(monkeypatch, tmp_path):
    import pytest
    from pydantic import ValidationError

    from evergreen.resources import EvergreenResource
    from evergreen.settings import write_home_settings

    monkeypatch.delenv("EVERGREEN_LABEL_DELAY_DAYS", raising=False)
    write_home_settings(tmp_path, {"label_delay_days": 3, "start_date": "2018-05-01"})

    from_resource = EvergreenResource(home=str(tmp_path)).settings()
    assert (from_resource.label_delay_days, str(from_resource.start_date)) == (3, "2018-05-01")
    monkeypatch.setenv("EVERGREEN_HOME", str(tmp_path))
    assert EvergreenSettings().label_delay_days == 3  # what get_settings() reads at load
    monkeypatch.setenv("EVERGREEN_LABEL_DELAY_DAYS", "5")
    assert EvergreenSettings(home=tmp_path).label_delay_days == 5
    with pytest.raises(ValidationError):  # refused when written, not when a run reads it
        write_home_settings(tmp_path, {"label_delay_days": -1})
    assert EvergreenSettings(home=tmp_path / "other").label_delay_days == 5
