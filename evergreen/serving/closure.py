"""What the bento must carry: the project modules the service imports, and a proof that it
imports with nothing else.

``project_closure`` reads the source (``ast``, no import): from the service module and the
classes ``feature_store.yaml`` names by ``type:`` (Feast imports those by string), it follows
every ``import`` of a project module, at module level or inside a function (a lazy import runs
only when its function does), except those under ``if TYPE_CHECKING:``. Each module brings its
packages' ``__init__.py``. The bento's ``include`` list is these files plus the data files the
bentofile names; nobody keeps the Python part by hand.

``check_isolated`` then imports every one of those modules in a fresh interpreter that sees the
bento's own ``src/`` folder and the installed third-party packages, and nothing else: no
editable install (``-S``: no ``.pth`` file runs), no project root on ``sys.path``, and a finder
that refuses any installed distribution outside the serving requirements. On the host the
editable install hides a missing file; this interpreter does not, so a module the bento lacks,
or a library the image will not have, fails the build with its name.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from evergreen.features.repo import PROJECT_ROOT

SERVICE_MODULE = "bentos.fraud_detection.service"
FEATURE_STORE_YAML = PROJECT_ROOT / "feature_repo" / "feature_store.yaml"


class ClosureError(RuntimeError):
    """The bento would not import: the message names what is missing."""


def _project_packages(root: Path) -> set[str]:
    """Top-level names that are the project's own (folders and modules at the root)."""
    names = {p.name for p in root.iterdir() if p.is_dir() and any(p.glob("**/*.py"))}
    names |= {p.stem for p in root.glob("*.py")}
    return names - {".venv", "tests", "bench"}


def module_file(module: str, root: Path = PROJECT_ROOT) -> Path | None:
    """The source file of a project module (``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``)."""
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.Module, module: str, is_package: bool) -> Iterable[str]:
    """Every module name an import statement of ``module`` may load (runtime ones only)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            skip |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            yield source
            yield from (f"{source}.{alias.name}" for alias in node.names)  # maybe submodules


def feast_plugin_modules(feature_store_yaml: Path = FEATURE_STORE_YAML) -> list[str]:
    """Modules ``feature_store.yaml`` names as ``type: module.Class`` (imported by string)."""
    config = yaml.safe_load(feature_store_yaml.read_text())
    found = []
    for section in config.values():
        kind = section.get("type") if isinstance(section, dict) else None
        if isinstance(kind, str) and "." in kind:
            found.append(kind.rpartition(".")[0])
    return found


def project_closure(entries: Iterable[str] = (), root: Path = PROJECT_ROOT) -> dict[str, Path]:
    """{module: file} of every project module reachable by imports from ``entries`` (default:
    the service and Feast's plugins), with the packages' ``__init__`` modules."""
    own = _project_packages(root)
    stack = list(entries) or [SERVICE_MODULE, *feast_plugin_modules()]
    found: dict[str, Path] = {}
    while stack:
        name = stack.pop()
        if name in found or name.split(".")[0] not in own:
            continue
        path = module_file(name, root)
        if path is None:
            continue  # a name imported from a module, not a module itself
        found[name] = path
        parts = name.split(".")
        stack += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages
        tree = ast.parse(path.read_text(), filename=str(path))
        stack += _imported_names(tree, name, path.name == "__init__.py")
    return dict(sorted(found.items()))


def include_patterns(modules: Mapping[str, Path], root: Path = PROJECT_ROOT) -> list[str]:
    """The bentofile ``include`` entries of these modules' files (paths from the root)."""
    return sorted(str(path.relative_to(root)) for path in modules.values())


# Runs in the isolated interpreter: argv[1] is a JSON spec. Prints a JSON list of problems.
_CHECK = r"""
import importlib, importlib.abc, importlib.metadata, json, sys, traceback
spec = json.loads(sys.argv[1])
sys.path[:] = [spec["src"], *sys.path, *spec["site"]]
allowed = set(spec["allowed"])
owners = importlib.metadata.packages_distributions()
import os
own = {n.removesuffix(".py") for n in os.listdir(spec["src"])}

def norm(name):
    import re
    return re.sub(r"[-_.]+", "-", name).lower()

class OnlyServingPackages(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in own:  # the project's packages: only what the bento's src/ holds
            return None
        dists = {norm(d) for d in owners.get(top, ())}
        if dists and not dists & allowed:
            raise ModuleNotFoundError(
                f"No module named {name!r} (installed here from {sorted(dists)[0]}, "
                "which is not a serving requirement)", name=name)
        return None

sys.meta_path.insert(0, OnlyServingPackages())
problems = []
for module in spec["modules"]:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        problems.append({"module": module, "missing": error.name, "error": str(error)})
    except Exception as error:
        last = traceback.format_exception(error)[-1].strip()
        problems.append({"module": module, "missing": None, "error": last})
print(json.dumps(problems))
"""


def site_packages() -> list[str]:
    """This environment's third-party package folders."""
    paths = sysconfig.get_paths()
    return sorted({paths["purelib"], paths["platlib"]})


def check_isolated(
    src: Path,
    modules: Iterable[str],
    allowed_distributions: Iterable[str],
    env: Mapping[str, str],
    timeout_s: float = 300,
) -> None:
    """Import ``modules`` from ``src`` alone in a fresh interpreter (above); raise
    ``ClosureError`` naming every module that is missing or does not import."""
    spec = {
        "src": str(src),
        "modules": list(modules),
        "allowed": sorted(allowed_distributions),
        "site": site_packages(),
    }
    cmd = [sys.executable, "-I", "-S", "-c", _CHECK, json.dumps(spec)]
    done = subprocess.run(
        cmd, cwd=src, env=dict(env), capture_output=True, text=True, timeout=timeout_s
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise ClosureError(
            f"the bento's import check did not run (exit {done.returncode}):\n{tail}"
        )
    problems = json.loads(lines[-1])
    if problems:
        raise ClosureError(_explain(problems))


def _explain(problems: list[dict]) -> str:
    missing = sorted({p["missing"] for p in problems if p["missing"]})
    lines = [f"the bento does not import on its own ({len(problems)} module(s) fail):"]
    for p in problems:
        lines.append(f"  {p['module']}: {p['error']}")
    if missing:
        lines.append(
            "missing: " + ", ".join(missing) + " (a project file the bentofile does not "
            "include, or a library outside the serving requirements)"
        )
    return "\n".join(lines)
