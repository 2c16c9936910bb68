"""The command line: plain-language errors, and the ingest and quarantine commands end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_help_explains_the_commands_in_order_of_use():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    assert "keeps a fraud model fresh" in result.output
    epilog = result.output[result.output.index("In order of use:") :]
    steps = ["simulate", "ingest", "quarantine", "demo", "ui", "models"]
    positions = [epilog.index(f"evergreen {name} ") for name in steps]
    assert positions == sorted(positions)
    assert "EVERGREEN_HOME" in epilog

    ingest_help = runner.invoke(app, ["ingest", "--help"])
    assert ingest_help.exit_code == 0
    assert "--from" in ingest_help.output and "evergreen quarantine list" in ingest_help.output


def _evergreen(*args: str, **env: str) -> subprocess.CompletedProcess:
    """The installed ``evergreen`` script in a fresh process, as a person runs it."""
    script = Path(sys.executable).with_name("evergreen")
    return subprocess.run(
        [str(script), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_bad_setting_is_one_plain_line_not_a_traceback(tmp_path):
    done = _evergreen(
        "quarantine", "list", EVERGREEN_HOME=str(tmp_path), EVERGREEN_LABEL_DELAY_DAYS="-1"
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip() == (
        "error: EVERGREEN_LABEL_DELAY_DAYS=-1: Input should be greater than or equal to 0"
    )


def test_evergreen_debug_shows_the_traceback(tmp_path, monkeypatch):
    from pydantic import ValidationError

    monkeypatch.setenv("EVERGREEN_HOME", str(tmp_path))
    monkeypatch.setenv("EVERGREEN_LABEL_DELAY_DAYS", "-1")
    monkeypatch.setenv("EVERGREEN_DEBUG", "1")
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["quarantine", "list"])
    finally:
        get_settings.cache_clear()
    assert isinstance(result.exception, ValidationError)


def test_retrains_lists_every_trigger_with_its_reason(home_env):
    import datetime as dt

    from evergreen.loop.retrain_policy import RetrainGovernor, Trigger

    governor = RetrainGovernor(get_settings())
    day = dt.datetime(2018, 5, 1, tzinfo=dt.UTC)
    governor.consider(Trigger("drift", day, severity=0.5))
    governor.consider(Trigger("schedule", day))

    result = runner.invoke(app, ["retrains", "--json"])

    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["kind"], r["outcome"]) for r in rows] == [
        ("drift", "accepted"),
        ("follow_up", "scheduled"),  # for when the drift's labels have matured
        ("follow_up", "scheduled"),
        ("schedule", "suppressed"),
    ]
    assert "cooldown" in rows[3]["reason"]


# Every command on bad input, in a fresh process as a person runs it: a clear error, never a
# traceback or Dagster's "Stack Trace:" blocks. (One argv per command; ``demo`` and ``ui`` get
# a bad option only: their real runs are the e2e and UI tests.)
BAD_INPUT = [
    ["simulate", "--days", "-1"],
    ["simulate", "--bad-data", "no_such_kind@2018-04-01"],
    ["simulate", "--append", "--out", "{home}/nowhere"],
    ["ingest", "--from", "2099-01-01"],
    ["quarantine", "list", "--json"],
    ["demo", "--quick", "--no-such-option"],
    ["ui", "--port", "not-a-port"],
    ["status", "--json"],
    ["models", "--json"],
    ["promote", "no_such_model", "--reason", "x"],
    ["promote", "no_such_model"],
    ["reject", "no_such_model", "--reason", "x"],
    ["rollback", "--reason", "x"],
    ["history", "--at", "yesterday-ish"],
    ["history", "--at", "2018-06-06"],
    ["history", "--at", "2018-06-06", "--clock", "sundial"],
    ["retrains", "--json"],
    ["serve", "no_such_model:abc"],
    ["deploy", "no_such_model:abc"],
    ["deploy", "no_such_model:abc", "--strategy", "sideways"],
    ["deploy", "no_such_model:abc", "--steps", "10,x"],
    ["stop"],
    ["rollout", "resume"],
    ["bento", "build", "--model", "no_such_model"],
    ["bento", "validate", "--model", "no_such_model"],
    ["bento", "containerize", "--model", "no_such_model", "--dry-run"],
    ["bento", "prepare", "--no-such-option"],
    ["version", "--no-such-option"],
]


def _no_stack_traces(done: subprocess.CompletedProcess) -> None:
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "Stack Trace" not in output, output[-3000:]


@pytest.mark.parametrize("args", BAD_INPUT, ids=lambda a: " ".join(a)[:40])
def test_no_command_shows_a_traceback_on_bad_input(args, tmp_path):
    home = tmp_path / "home"
    argv = [a.replace("{home}", str(home)) for a in args]
    done = _evergreen(*argv, EVERGREEN_HOME=str(home), DAGSTER_HOME=str(home / "dagster"))
    _no_stack_traces(done)
    assert done.stdout.strip() or done.stderr.strip(), "said nothing"


def test_ingest_over_bad_days_prints_reasons_not_stack_traces(home_env, tmp_path):
    """Bad files on three days: each gets its reason in one line, and no Dagster ERROR event
    with a "Stack Trace:" block reaches the terminal (14 did over 7 days)."""
    for i in (0, 1, 2):
        list_files(home_env.landing_dir, "transactions", day(i))[0].write_bytes(b"garbage")
    done = _evergreen(
        "ingest",
        "--from",
        day(0).isoformat(),
        "--to",
        day(2).isoformat(),
        EVERGREEN_HOME=str(home_env.home),
        DAGSTER_HOME=os.environ["DAGSTER_HOME"],
    )
    assert done.returncode == 1
    _no_stack_traces(done)
    assert done.stdout.count("not a readable Parquet file") >= 3, done.stdout


def test_a_day_past_the_partitions_is_named_before_anything_runs(tmp_path):
    home = tmp_path / "home"
    done = _evergreen("ingest", "--from", "2099-01-01", EVERGREEN_HOME=str(home))
    assert done.returncode == 1
    assert "has no partition 2099-01-01" in done.stderr, done.stderr
    assert "DagsterUnknownPartitionError" not in done.stdout + done.stderr
