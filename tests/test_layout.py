"""The layout's one rule: data flows one way.

`__main__.py` -> the way in and the database modes -> components -> settings. No import circle, and no
component imports the entry (`components/https/entry.py`) or a mode (`components/database/` but its
components), nor settings anything above them.
"""

from __future__ import annotations

import ast
from pathlib import Path

COMPONENTS = Path(__file__).resolve().parent.parent / "components"
#: What under `components/database/` is a component (a floor below the modes) rather than a mode.
DATABASE_COMPONENTS = ("postgres_server", "external_client", "driver")


def _module(path: Path) -> str:
    parts = path.relative_to(COMPONENTS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("components")}


def _graph() -> dict[str, set[str]]:
    """Module -> the modules of `components` it imports.

    Itself and a bare package (a docstring, no import) are left out: `from components.https import certs`
    imports `certs`.
    """
    modules = {_module(p): p for p in COMPONENTS.rglob("*.py") if "scripts" not in p.parts}
    empty = {name for name, path in modules.items() if path.name == "__init__.py" and not _imports(path)}
    return {
        name: {i for i in _imports(path) if i in modules and i != name and i not in empty}
        for name, path in modules.items()
    }


def _is_mode_or_entry(name: str) -> bool:
    if name == "components.https.entry":
        return True
    return name.startswith("components.database") and name.rsplit(".", 1)[-1] not in DATABASE_COMPONENTS


def test_no_component_imports_the_entry_or_a_mode() -> None:
    """Components (and settings) never reach up to the way in or the database modes."""
    for name, imports in _graph().items():
        if _is_mode_or_entry(name):
            continue
        upward = sorted(i for i in imports if _is_mode_or_entry(i))
        assert not upward, f"{name} imports {upward}"


def test_settings_import_nothing_above_them() -> None:
    """Settings read config; of the rest they use only the pure checks (certs) and names."""
    for name, imports in _graph().items():
        if name.startswith("components.settings"):
            allowed = ("components.settings", "components.https.certs", "components.naming")
            assert all(i.startswith(allowed) for i in imports), f"{name} imports {sorted(imports)}"


def test_no_import_circle() -> None:
    """Depth-first through every module's imports: no module is reached again on its own path."""
    graph = _graph()

    def visit(name: str, path: tuple[str, ...]) -> None:
        for target in graph.get(name, ()):
            assert target not in path, f"import circle: {' -> '.join((*path, target))}"
            visit(target, (*path, target))

    for module in graph:
        visit(module, (module,))
