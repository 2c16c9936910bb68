"""Every third-party module the project imports at run time is declared in pyproject.toml:
in ``[project.dependencies]``, or in the ``cluster`` extra for what only the cluster profile
imports. Nothing may arrive only through the ``dev`` extra (tests, lint) or as some other
package's dependency. Lazy imports inside functions count as much as those at the top."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ("definitions.py", "evergreen", "assets", "sensors", "bentos", "feature_repo")
OWN = {"evergreen", "assets", "sensors", "definitions", "bentos", "feature_repo", "service"}


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalized (PEP 503)."""
    bare = re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", bare).lower()


def declared(project: dict, extras: tuple[str, ...] = ("cluster",)) -> set[str]:
    """Distributions declared for run time: the dependencies and the given extras."""
    names = {_name(r) for r in project["dependencies"]}
    for extra in extras:
        names |= {_name(r) for r in project["optional-dependencies"][extra]}
    return names


def imported_modules(roots=RUNTIME) -> dict[str, str]:
    """Top-level third-party module -> the first file that imports it."""
    found: dict[str, str] = {}
    for root in roots:
        path = ROOT / root
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in OWN:
                        found.setdefault(top, str(file.relative_to(ROOT)))
    return found


def undeclared(project: dict) -> list[str]:
    """Imports whose distribution is not declared for run time, in words."""
    owners = metadata.packages_distributions()
    names = declared(project)
    wrong = []
    for module, where in sorted(imported_modules().items()):
        dists = {_name(d) for d in owners.get(module, [module])}
        if not dists & names:
            wrong.append(f"{where} imports {module} ({', '.join(sorted(dists))}): not declared")
    return wrong


def test_every_runtime_import_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert undeclared(project) == []


def test_a_dev_only_dependency_is_caught():
    """The rule fails when broken: with kubernetes-validate only in the dev extra (where it
    was), the kubernetes target's import is reported."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    project["dependencies"] = [r for r in project["dependencies"] if "kubernetes" not in r]
    project["optional-dependencies"]["dev"].append("kubernetes-validate>=1.30")
    assert any("kubernetes_validate" in line for line in undeclared(project))


def test_the_lock_holds_the_cluster_extra():
    """``make install`` syncs requirements.lock: it must pin the cluster extra too."""
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {_name(line.split("==")[0]) for line in lock.splitlines() if "==" in line}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert declared(project) - pinned == set()
