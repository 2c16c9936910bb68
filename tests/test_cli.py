"""The command line: plain-language errors, and the ingest and quarantine commands end to end."""

import json

import pytest
from typer.testing import CliRunner

from evergreen.cli import app
from evergreen.ingest.landing import list_files
from evergreen.settings import get_settings
from tests.conftest import day

runner = CliRunner()


@pytest.fixture
def home_env(settings, monkeypatch, tmp_path):
    monkeypatch.setenv("EVERGREEN_HOME", str(settings.home))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["ingest", "--from", "2018-13-01"], "is not a date"),
        (["ingest", "--from", "2018-04-02", "--to", "2018-04-01"], "--to is before --from"),
        (["ingest", "--from", "2018-04-01", "--feed", "clicks"], "unknown feed 'clicks'"),
    ],
)
def test_bad_input_gets_a_clear_error_not_a_traceback(args, words):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert words in result.output
    assert "Traceback" not in result.output


def test_ingest_then_list_the_quarantine(home_env):
    path = list_files(home_env.landing_dir, "transactions", day(1))[0]
    path.write_bytes(b"not parquet at all")

    result = runner.invoke(
        app,
        [
            "ingest",
            "--from",
            day(0).isoformat(),
            "--to",
            day(1).isoformat(),
            "--feed",
            "transactions",
        ],
    )
    assert result.exit_code == 1, result.output
    assert "schema_contract" in result.output and "not a readable Parquet file" in result.output

    listed = runner.invoke(app, ["quarantine", "list", "--json"])
    rows = json.loads(listed.output)
    assert [(r["feed"], r["date"], r["file"]) for r in rows] == [
        ("transactions", day(1).isoformat(), path.name)
    ]
