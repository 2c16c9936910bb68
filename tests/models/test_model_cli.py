"""`evergreen models`, `promote` and `reject`: audited overrides and plain errors."""

import getpass
import json

import pytest
from typer.testing import CliRunner

from evergreen.cli import app
from evergreen.models.registry import MODEL_FILE, ModelRegistry
from evergreen.settings import get_settings

runner = CliRunner()


@pytest.fixture
def cli_home(home, registered, monkeypatch, tmp_path):
    """The CLI pointed at a home with three registered candidates."""
    monkeypatch.setenv("EVERGREEN_HOME", str(home.home))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    get_settings.cache_clear()
    yield registered
    get_settings.cache_clear()


def _models_json() -> dict[str, str]:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    return {row["tag"]: row["status"] for row in json.loads(result.output)}


def test_overrides_are_recorded_with_the_user_and_reason(cli_home, home):
    a, b, c = cli_home

    promoted = runner.invoke(app, ["promote", a, "--reason", "first model, checked by hand"])
    replaced = runner.invoke(app, ["promote", b.split(":")[1][:10], "--reason", "better on AP"])
    rejected = runner.invoke(app, ["reject", c, "--reason", "trained on a bad day"])

    assert promoted.exit_code == replaced.exit_code == rejected.exit_code == 0, promoted.output
    assert f"{b} is now champion" in replaced.output and f"{a} is retired" in replaced.output
    assert _models_json() == {a: "retired", b: "champion", c: "rejected"}
    history = json.loads(runner.invoke(app, ["models", "--history", "--json"]).output)
    overrides = [(e["tag"], e["status"], e["actor"], e["reason"]) for e in history[3:]]
    user = getpass.getuser()
    assert overrides == [
        (a, "champion", user, "first model, checked by hand"),
        (a, "retired", user, f"replaced by {b}: better on AP"),
        (b, "champion", user, "better on AP"),
        (c, "rejected", user, "trained on a bad day"),
    ]
    assert ModelRegistry(home).champion().tag == b
    table = runner.invoke(app, ["models"])
    assert table.exit_code == 0 and "champion" in table.output


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["promote", "fraud_detector:nope", "--reason", "x"], 1, "no model 'fraud_detector:nope'"),
        (["reject", "nope"], 2, "Missing option '--reason'"),
        (["reject", "{a}", "--reason", " "], 2, "a reason is required"),
        (["promote", "{a}", "--reason", "y"], 0, "is now champion"),
    ],
)
def test_bad_requests_get_a_plain_error(cli_home, args, code, words):
    args = [arg.format(a=cli_home[0]) for arg in args]

    result = runner.invoke(app, args)

    assert result.exit_code == code, result.output
    assert words in result.output
    assert "Traceback" not in result.output


def test_the_champion_cannot_be_rejected_directly(cli_home):
    a, _, _ = cli_home
    runner.invoke(app, ["promote", a, "--reason", "first"])

    result = runner.invoke(app, ["reject", a, "--reason", "oops"])

    assert result.exit_code == 1
    assert "is the champion: promote another model" in result.output
    assert _models_json()[a] == "champion"


def test_promoting_a_corrupted_artifact_is_refused(cli_home, home):
    a, _, _ = cli_home
    model_file = ModelRegistry(home).artifact_path(a) / MODEL_FILE
    model_file.write_bytes(model_file.read_bytes()[:-10])

    result = runner.invoke(app, ["promote", a, "--reason", "looks fine"])

    assert result.exit_code == 1
    assert result.output.startswith("error: the artifact of") and "is corrupt" in result.output
    assert str(model_file) in result.output.replace("\n", "")
    assert "Traceback" not in result.output
    assert _models_json()[a] == "candidate"
