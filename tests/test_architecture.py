"""The layout's rules, read from the source: imports flow code location -> library only, no
import cycle, and one owner of model status. Imports inside functions count as much as those
at the top: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("evergreen", "assets", "sensors")
CODE_LOCATION = ("definitions", "assets", "sensors")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    """Every module of the project by dotted name."""
    files = [ROOT / "definitions.py"]
    for package in PACKAGES:
        files += sorted((ROOT / package).rglob("*.py"))
    return {_module_name(f): f for f in files}


MODULES = _sources()


def imports_of(path: Path, modules=MODULES) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, at any depth, resolved to the project's module
    it names (``from a.b import c`` is ``a.b.c`` when that is a module, else ``a.b``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.append((node.lineno, child if child in modules else node.module))
    return found


def _shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _is_under(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == r or module.startswith(r + ".") for r in roots)


def backward_imports(modules=MODULES) -> list[str]:
    """Library modules importing the code location; only the demo harness may load
    ``definitions`` (and nothing under ``assets`` or ``sensors``)."""
    wrong = []
    for name, path in modules.items():
        if not _is_under(name, ("evergreen",)):
            continue
        for line, imported in imports_of(path, modules):
            if not _is_under(imported, CODE_LOCATION):
                continue
            if imported == "definitions" and _is_under(name, ("evergreen.demo",)):
                continue
            wrong.append(f"{_shown(path)}:{line} imports {imported}")
    return wrong


def import_cycles(modules=MODULES) -> list[list[str]]:
    """Strongly connected groups of more than one module (or a module importing itself)."""
    graph = {
        name: {m for _, m in imports_of(path, modules) if m in modules and m != name}
        for name, path in modules.items()
    }
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_library_never_imports_the_code_location():
    assert backward_imports() == []


def test_no_module_imports_the_demo_harness_but_the_command_line():
    users = [
        f"{_shown(path)}:{line}"
        for name, path in MODULES.items()
        if not _is_under(name, ("evergreen.demo", "evergreen.cli"))
        for line, imported in imports_of(path)
        if _is_under(imported, ("evergreen.demo",))
    ]
    assert users == []


def test_the_loop_package_holds_only_what_sensors_and_assets_use():
    used = {
        imported
        for name, path in MODULES.items()
        if _is_under(name, CODE_LOCATION)
        for _, imported in imports_of(path)
    }
    loop = {n for n in MODULES if n.startswith("evergreen.loop.")}
    # A loop module may serve the code location through another loop module.
    for name in sorted(loop):
        used |= {m for _, m in imports_of(MODULES[name]) if name in used}
    assert sorted(loop - used) == []


def test_there_is_no_import_cycle():
    assert import_cycles() == []


def test_the_rules_catch_a_violation(tmp_path):
    """The checks themselves fail on a broken layout (a test that cannot fail proves nothing)."""
    bad = {
        "evergreen.models.a": tmp_path / "a.py",
        "evergreen.models.b": tmp_path / "b.py",
        "assets.models": tmp_path / "assets_models.py",
    }
    bad["evergreen.models.a"].write_text(
        "import evergreen.models.b\n\n\ndef f():\n    from assets.models import x\n"
    )
    bad["evergreen.models.b"].write_text("def g():\n    import evergreen.models.a\n")
    bad["assets.models"].write_text("x = 1\n")

    assert backward_imports(bad) == [f"{bad['evergreen.models.a']}:5 imports assets.models"]
    assert import_cycles(bad) == [["evergreen.models.a", "evergreen.models.b"]]


# One owner of model status: only the registry appends status events, only the ledger module
# writes the events table, and callers name statuses by the enum.


def _calls(path: Path, name: str) -> list[ast.Call]:
    tree = ast.parse(path.read_text())
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (getattr(node.func, "attr", None) == name or getattr(node.func, "id", None) == name)
    ]


def status_writers(modules=MODULES) -> list[str]:
    """Places outside the registry that write a model's status another way than through
    ``ModelRegistry.set_status``, or pass it a bare string."""
    wrong = []
    for name, path in modules.items():
        rel = _shown(path)
        if name != "evergreen.models.registry":
            wrong += [f"{rel}:{c.lineno} append_event" for c in _calls(path, "append_event")]
        if name != "evergreen.models.ledger" and "INTO model_events" in path.read_text():
            wrong.append(f"{rel}: writes model_events")
        for call in _calls(path, "set_status"):
            status = call.args[1] if len(call.args) > 1 else None
            if isinstance(status, ast.Constant):
                wrong.append(f"{rel}:{call.lineno} set_status with the string {status.value!r}")
    return wrong


def test_only_the_registry_changes_a_models_status():
    assert status_writers() == []


@pytest.mark.parametrize(
    "source",
    [
        "from evergreen.models import ledger\nledger.append_event(c, 't', 'champion', 'a', 'r')\n",
        "conn.execute('INSERT INTO model_events VALUES (1)')\n",
        "registry.set_status(tag, 'champion', 'me', 'why')\n",
    ],
)
def test_the_status_rule_catches_a_second_writer(tmp_path, source):
    rogue = tmp_path / "rogue.py"
    rogue.write_text(source)
    assert len(status_writers({"evergreen.rollout.rogue": rogue})) == 1
