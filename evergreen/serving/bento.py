"""Building the fraud-detection bento for a registered model.

``build_bento(settings, model_tag)`` verifies the model's artifact (``ModelRegistry.load``
checks its sha256), pins the serving code's Python dependencies to ``requirements.lock``'s
versions, and runs ``bentoml build`` with the project root as build context into
``settings.bentoml_home``. The bento's version is the model's version, so
``fraud_detection:<v>`` serves ``fraud_detector:<v>``; the model tag also travels in the bento
as the ``model_tag`` argument the service reads. A bento of that version already built from the
same code is reused; one built from other code is rebuilt.

The bento's Python files are the service's import closure (``evergreen.serving.closure``), and a
build imports them from the bento alone before it is kept. Containers: with a base image
configured, ``container_options`` takes BentoML's v1 image path (no apt layer);
``evergreen.serving.containers`` builds the image. ``render_dockerfile`` writes the Dockerfile
BentoML would build, without an engine.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import yaml

from evergreen.features.repo import PROJECT_ROOT
from evergreen.models.bentoml_home import bento_store_dir, bentoml_env, using_bentoml_home
from evergreen.serving.closure import (
    ClosureError,
    check_isolated,
    include_patterns,
    project_closure,
)
from evergreen.settings import EvergreenSettings

BENTO_NAME = "fraud_detection"
BENTOFILE = PROJECT_ROOT / "bentos" / BENTO_NAME / "bentofile.yaml"
DOCKERFILE_TEMPLATE = PROJECT_ROOT / "bentos" / BENTO_NAME / "Dockerfile.template"
LOCK_FILE = PROJECT_ROOT / "requirements.lock"
# What the service imports (with Feast's DuckDB offline-store extra, which its config loads).
SERVING_REQUIREMENTS = (
    "bentoml",
    "catboost",
    "feast[duckdb]",
    "feast[redis]",  # the cluster profile's online store
    "psycopg2-binary",  # and its Feast registry on PostgreSQL
    "sqlalchemy",
    "duckdb",
    "numpy",
    "pandas",
    "pyarrow",
    "pydantic",
    "pydantic-settings",
    "pyyaml",
    "prometheus-client",
)
# Required by a serving root, never imported when serving: left out of the image (it installs
# with --no-deps, so nothing pulls them back). catboost's plotting and notebook widgets, and
# SQLAlchemy's mypy plugin that Feast asks for. The isolated import check proves the service
# imports without them.
SERVING_EXCLUDES = frozenset({"graphviz", "matplotlib", "plotly", "mypy"})
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


class BentoBuildError(RuntimeError):
    """``bentoml build`` failed; the message holds its output."""


@dataclass(frozen=True)
class BuiltBento:
    """A bento in the store of ``settings.bentoml_home``."""

    tag: str
    model_tag: str
    path: Path
    size_bytes: int
    requirements: list[str]
    code_version: str
    rebuilt: bool


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(lock_file: Path = LOCK_FILE) -> dict[str, str]:
    """``requirements.lock`` as {normalised name: version}."""
    pins = {}
    for line in lock_file.read_text().splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[_normalise(match.group(1))] = match.group(2)
    return pins


def serving_requirements(
    roots: tuple[str, ...] = SERVING_REQUIREMENTS,
    lock_file: Path = LOCK_FILE,
    excludes: frozenset[str] = SERVING_EXCLUDES,
) -> list[str]:
    """Every distribution the roots need (with their extras, for this platform and Python),
    except ``excludes`` and what only they need, each pinned to the lock's version:
    ``name==version`` lines, sorted."""
    from packaging.requirements import Requirement

    pins = lock_pins(lock_file)
    needed: dict[str, set[str]] = {}
    stack = [Requirement(r) for r in roots]
    while stack:
        requirement = stack.pop()
        name = _normalise(requirement.name)
        extras = set(requirement.extras)
        if name in excludes:
            continue
        if name in needed and extras <= needed[name]:
            continue
        needed[name] = needed.get(name, set()) | extras
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            raise BentoBuildError(f"{name} is needed for serving but not installed") from None
        for text in requires:
            child = Requirement(text)
            wanted = [{"extra": e} for e in sorted(needed[name])] or [{"extra": ""}]
            if child.marker is None or any(child.marker.evaluate(env) for env in wanted):
                stack.append(child)
    unpinned = sorted(n for n in needed if n not in pins)
    if unpinned:
        raise BentoBuildError(f"not pinned in {lock_file.name}: {', '.join(unpinned)}")
    return sorted(f"{name}=={pins[name]}" for name in needed)


def _included_files(options: dict) -> list[Path]:
    """The files the bentofile's include patterns pick from the project (no excludes needed:
    caches are never matched by these patterns' ``.py``/``.yaml``/``.md`` endings)."""
    files = {p for pattern in options["include"] for p in PROJECT_ROOT.glob(pattern)}
    return sorted(p for p in files if p.is_file() and "__pycache__" not in p.parts)


def code_version(options: dict, requirements: list[str]) -> str:
    """A hash of what goes into the bento besides the model: the included source files, the
    bentofile and the pinned requirements."""
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for path in _included_files(options):
        digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
        digest.update(path.read_bytes())
    digest.update("\n".join(requirements).encode())
    return digest.hexdigest()[:12]


def _existing(settings: EvergreenSettings, version: str) -> Path | None:
    path = bento_store_dir(settings) / BENTO_NAME / version
    return path if (path / "bento.yaml").exists() else None


def _bento_labels(path: Path) -> dict[str, str]:
    return yaml.safe_load((path / "bento.yaml").read_text()).get("labels", {}) or {}


def build_bento(settings: EvergreenSettings, model_tag: str) -> BuiltBento:
    """Verify ``model_tag``'s artifact and build (or reuse) ``fraud_detection:<version>``."""
    from evergreen.models.registry import ModelRegistry

    ModelRegistry(settings).load(model_tag)  # raises CorruptArtifactError if altered
    version = model_tag.split(":", 1)[1]
    modules = project_closure()
    options = container_options(
        settings, with_closure(yaml.safe_load(BENTOFILE.read_text()), modules)
    )
    requirements = serving_requirements()
    code = code_version(options, requirements)
    existing = _existing(settings, version)
    if existing is not None and _bento_labels(existing).get("code_version") == code:
        return _built(existing, model_tag, requirements, code, rebuilt=False)
    if existing is not None:
        _delete(settings, f"{BENTO_NAME}:{version}")
    with tempfile.TemporaryDirectory(prefix="evergreen-bento-") as tmp:
        bentofile = _write_build_files(Path(tmp), options, requirements)
        _run_build(settings, bentofile, version, model_tag, code)
    path = _existing(settings, version)
    if path is None:
        raise BentoBuildError(f"bentoml build reported success but left no {version}")
    try:
        check_bento_imports(settings, path, model_tag, list(modules), requirements)
    except ClosureError as error:
        _delete(settings, f"{BENTO_NAME}:{version}")  # never leave a bento that cannot start
        raise BentoBuildError(f"{BENTO_NAME}:{version} was not kept: {error}") from None
    return _built(path, model_tag, requirements, code, rebuilt=True)


def with_closure(options: dict, modules: dict[str, Path]) -> dict:
    """The bentofile with the service's import closure added to its ``include`` list (the
    bentofile itself names only data files)."""
    include = [*options.get("include", []), *include_patterns(modules)]
    return {**options, "include": sorted(set(include))}


def check_bento_imports(
    settings: EvergreenSettings,
    path: Path,
    model_tag: str,
    modules: list[str],
    requirements: list[str],
) -> None:
    """Import the bento's modules from its own ``src/`` in an isolated interpreter, with only
    the serving requirements importable (``evergreen.serving.closure``); raises
    ``ClosureError`` naming what is missing."""
    allowed = [_normalise(line.split("==", 1)[0]) for line in requirements]
    env = {
        **_base_env(),
        **bentoml_env(settings),
        "EVERGREEN_HOME": str(settings.home),
        "EVERGREEN_MODEL_TAG": model_tag,
    }
    check_isolated(path / "src", modules, allowed, env)


def container_options(settings: EvergreenSettings, options: dict) -> dict:
    """The bentofile with the settings' container set-up: a local base image, and wheels
    installed offline (``../shared/reference/containers.md``: no Docker Hub, and pip/uv inside
    a build cannot verify PyPI's certificate here). Unset, the plain Docker path stays."""
    options = {**options, "docker": dict(options.get("docker", {}))}
    python = dict(options.get("python", {}))
    if settings.container_base_image:
        options["docker"]["base_image"] = settings.container_base_image
        # BentoML's v2 image adds the distro's apt layer (build-essential, git: 639 MB) even
        # on a base image; a Dockerfile template selects its v1 path, which does not. Every
        # wheel is binary, so nothing is compiled in the image.
        options["docker"].pop("distro", None)
        options["docker"].pop("python_version", None)
        options["docker"]["dockerfile_template"] = str(
            DOCKERFILE_TEMPLATE.relative_to(PROJECT_ROOT)
        )
    if settings.container_wheels_dir:
        python.update(no_index=True, find_links=[str(settings.container_wheels_dir)])
        # The lock step keeps find-links but drops no-index: keep uv offline in the image.
        options["envs"] = [*options.get("envs", []), {"name": "UV_OFFLINE", "value": "1"}]
    return {**options, "python": python}


def _write_build_files(folder: Path, options: dict, requirements: list[str]) -> Path:
    # BentoML refuses a requirements file outside the build context: list the pins instead.
    python = {**options.get("python", {}), "packages": requirements}
    bentofile = folder / "bentofile.yaml"
    bentofile.write_text(yaml.safe_dump({**options, "python": python}, sort_keys=False))
    return bentofile


def _run_build(
    settings: EvergreenSettings, bentofile: Path, version: str, model_tag: str, code: str
) -> None:
    cmd = [sys.executable, "-m", "bentoml", "build", "-f", str(bentofile)]
    cmd += ["--version", version, "--arg", f"model_tag={model_tag}"]
    cmd += ["--label", f"model_tag={model_tag}", "--label", f"code_version={code}"]
    cmd += ["--output", "tag", str(PROJECT_ROOT)]
    env = {**_base_env(), **bentoml_env(settings), "EVERGREEN_HOME": str(settings.home)}
    done = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()
        raise BentoBuildError(
            f"bentoml build of {model_tag} failed (exit {done.returncode}):\n"
            + "\n".join(output[-30:])
        )


def _base_env() -> dict[str, str]:
    import os

    return dict(os.environ)


def _delete(settings: EvergreenSettings, tag: str) -> None:
    import bentoml

    with using_bentoml_home(settings):
        bentoml.bentos.delete(tag)


def _built(
    path: Path, model_tag: str, requirements: list[str], code: str, rebuilt: bool
) -> BuiltBento:
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return BuiltBento(
        tag=f"{BENTO_NAME}:{path.name}",
        model_tag=model_tag,
        path=path,
        size_bytes=size,
        requirements=requirements,
        code_version=code,
        rebuilt=rebuilt,
    )


def model_size_bytes(settings: EvergreenSettings, model_tag: str) -> int:
    """The model artifact's size in the store (the bento references it, containerize copies
    it in)."""
    name, _, version = model_tag.partition(":")
    folder = settings.bentoml_home / "models" / name / version
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def render_dockerfile(settings: EvergreenSettings, bento_tag: str, out: Path) -> Path:
    """Write the Dockerfile ``bentoml containerize`` would build from (no engine needed)."""
    import bentoml
    from bentoml._internal.container import construct_containerfile

    with using_bentoml_home(settings):
        bento = bentoml.bentos.get(bento_tag)
        with construct_containerfile(bento, enable_buildkit=False) as (_, dockerfile):
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(dockerfile, out)
    return out
