"""The project's own import graph, read from the source with ``ast`` (nothing is imported).

Used by the layout tests: which local modules a module needs, directly or through others,
so that ``dvc.yaml``'s deps, ``bentofile.yaml``'s includes and the layering rules can be
checked against what the code really imports, including imports inside functions.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "serving", "monitoring", "mlstack")


def module_file(name: str) -> Path | None:
    """``pipeline.settings`` -> ``pipeline/settings.py`` (or a package's ``__init__.py``)."""
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    path = ROOT.joinpath(*parts)
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def module_name(file: Path) -> str:
    relative = file.relative_to(ROOT).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


@cache
def direct_imports(file: Path) -> frozenset[str]:
    """Local modules ``file`` imports anywhere in its body (functions included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from mlstack import scenarios` imports a module; `from x import name` a name.
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            file = module_file(name)
            # A top-level package's __init__ is empty; a subpackage's (monitoring.capture)
            # is the face that re-exports its modules, so it counts.
            if file is not None and (file.name != "__init__.py" or "." in name):
                found.add(name)
    return frozenset(found)


def closure(name: str) -> set[str]:
    """``name`` and every local module it needs, directly or not."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        file = module_file(current)
        if file is not None:
            todo.extend(direct_imports(file))
    return seen


def all_modules() -> list[str]:
    return sorted(
        module_name(file)
        for package in PACKAGES
        for file in (ROOT / package).rglob("*.py")
        if file.name != "__init__.py" or file.parent.parent != ROOT
    )


def file_of(name: str) -> str:
    file = module_file(name)
    assert file is not None, name
    return file.relative_to(ROOT).as_posix()
