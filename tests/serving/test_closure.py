"""The bento carries what it imports: its Python files are derived from the service's imports,
and a build fails, naming the module, when the bento would not import on its own."""

import shutil

import pytest

from evergreen.serving.bento import check_bento_imports
from evergreen.serving.closure import ClosureError, check_isolated, project_closure


def test_the_closure_follows_every_import_of_the_service():
    modules = project_closure()
    # Imported by feast_client at module level: the file the hand-kept list once lacked.
    assert "evergreen.library_notes" in modules
    # Feast imports the stores feature_store.yaml names by string.
    assert "evergreen.features.sqlite_online_store" in modules
    assert "bentos.fraud_detection.service" in modules and "evergreen" in modules
    # Nothing the service does not reach (the CLI, Dagster assets, training).
    assert not {m for m in modules if m.startswith(("evergreen.commands", "assets", "sensors"))}
    assert "evergreen.cli" not in modules and "evergreen.models.training" not in modules


def test_the_built_bento_imports_on_its_own_and_a_missing_module_is_named(
    serving_home, built_bento, tmp_path
):
    src = tmp_path / "bento"
    shutil.copytree(built_bento.path, src)
    modules = list(project_closure())
    settings = serving_home.settings
    # The bento as built passes (build_bento ran this check too).
    check_bento_imports(settings, src, serving_home.champion, modules, built_bento.requirements)

    (src / "src" / "evergreen" / "library_notes.py").unlink()  # the bug of issue 18
    with pytest.raises(ClosureError) as missing:
        check_bento_imports(settings, src, serving_home.champion, modules, built_bento.requirements)
    assert "missing: evergreen.library_notes" in str(missing.value)


def test_a_library_outside_the_serving_requirements_is_refused(tmp_path):
    shutil.copytree(project_closure()["evergreen.settings"].parent, tmp_path / "evergreen")
    allowed = ["pydantic", "pydantic-core", "pydantic-settings", "typing-extensions",
               "annotated-types", "typing-inspection", "python-dotenv"]  # fmt: skip
    with pytest.raises(ClosureError, match="pyyaml, which is not a serving requirement"):
        check_isolated(tmp_path, ["evergreen.settings"], allowed, {})
    check_isolated(tmp_path, ["evergreen.settings"], [*allowed, "pyyaml"], {})
