"""The layout the code promises, checked against what it really imports (``tests/imports.py``).

- every local module a DVC stage imports, directly or not, is a dep of that stage, and
  nothing else is, so editing a shared module re-runs exactly the stages that use it;
- ``bentofile.yaml`` packs exactly what the service imports;
- imports point one way: ``pipeline`` depends on nothing of ours, ``monitoring`` on
  ``pipeline``, ``serving`` on ``pipeline`` and the capture contract, and only the entry
  points in ``mlstack`` use all three; no stage is imported as a library; no cycles;
- no module of the packages is over 500 lines, no function over 60 without a reason;
- no test module imports another, and ``bench`` and ``tests`` do not import each other.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Project
from tests.imports import ROOT, all_modules, closure, direct_imports, file_of, module_file

STAGES = ("prepare", "train", "evaluate", "promote", "package")
SERVICE = "serving.service"
# What each package may import from the project's others.
ALLOWED = {
    "pipeline": ("pipeline.",),
    "monitoring": ("pipeline.", "monitoring."),
    "serving": ("pipeline.", "serving.", "monitoring.capture"),
    "mlstack": ("pipeline.", "serving.", "monitoring.", "mlstack."),
}


def dvc_stages() -> dict[str, Any]:
    stages: dict[str, Any] = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return stages


def code_needed(stage: str) -> set[str]:
    """The Python files a stage runs: its import closure (and, for package, the service's,
    which the Bento bakes in)."""
    modules = closure(f"pipeline.{stage}")
    if stage == "package":
        modules |= closure(SERVICE)
    return {file_of(m) for m in modules}


def missing_and_extra_deps(stages: dict[str, Any]) -> dict[str, tuple[set[str], set[str]]]:
    """Per stage: imported modules dvc.yaml does not list, and listed modules not imported."""
    problems = {}
    for stage in STAGES:
        listed = {d for d in stages[stage]["deps"] if str(d).endswith(".py")}
        needed = code_needed(stage)
        if needed != listed:
            problems[stage] = (needed - listed, listed - needed)
    return problems


def test_every_stage_lists_exactly_the_modules_it_imports() -> None:
    assert missing_and_extra_deps(dvc_stages()) == {}


def test_the_check_fails_when_a_dep_is_removed() -> None:
    """The walk is not vacuous: drop metrics.py from evaluate and the check names it."""
    stages = dvc_stages()
    stages["evaluate"]["deps"].remove("pipeline/metrics.py")
    assert missing_and_extra_deps(stages) == {"evaluate": ({"pipeline/metrics.py"}, set())}


def test_bentofile_packs_exactly_what_the_service_imports() -> None:
    bentofile = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    patterns = bentofile["include"]
    packed = {
        path.relative_to(ROOT).as_posix()
        for path in ROOT.rglob("*.py")
        if ".venv" not in path.parts
        and any(fnmatch.fnmatch(path.relative_to(ROOT).as_posix(), p) for p in patterns)
    }
    needed = {file_of(m) for m in closure(SERVICE)}
    packages = {f"{Path(f).parts[0]}/__init__.py" for f in needed}
    assert packed == needed | packages
    assert "params.yaml" in patterns
    assert bentofile["service"] == f"{SERVICE}:Classifier"


@pytest.mark.parametrize("module", all_modules())
def test_imports_point_one_way(module: str) -> None:
    package = module.split(".")[0]
    file = module_file(module)
    assert file is not None
    wrong = sorted(m for m in direct_imports(file) if not m.startswith(ALLOWED[package]))
    assert wrong == [], f"{module} imports {wrong}; {package} may use only {ALLOWED[package]}"


def test_the_capture_contract_depends_on_pipeline_only() -> None:
    """serving may import the monitoring.capture package, so it must not pull the rest of
    monitoring in: its closure is every module of the package, and pipeline."""
    package = {m for m in all_modules() if m.split(".")[:2] == ["monitoring", "capture"]}
    assert {"monitoring.capture", "monitoring.capture.writer"} <= package
    assert {m.split(".")[0] for m in closure("monitoring.capture")} == {"monitoring", "pipeline"}
    assert {m for m in closure("monitoring.capture") if m.startswith("monitoring.")} == package


def test_no_stage_is_imported_as_a_library() -> None:
    stages = {f"pipeline.{s}" for s in STAGES}
    importers = {
        module: sorted(direct_imports(module_file(module)) & stages)  # type: ignore[arg-type]
        for module in all_modules()
    }
    assert {m: found for m, found in importers.items() if found} == {}


def test_no_import_cycles() -> None:
    for module in all_modules():
        file = module_file(module)
        assert file is not None
        for imported in direct_imports(file):
            assert module not in closure(imported), f"{module} <-> {imported} form a cycle"


def test_ci_runs_the_readme_test_command_with_a_fresh_shells_path() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    assert "PATH=" not in ci, ".ci/run must not edit PATH: CI would hide what a newcomer hits"


def test_every_test_run_prints_the_25_slowest_durations() -> None:
    """The CI log's durations list (issue 33) comes from pytest's own addopts, so `make
    test`, `.ci/run` and a bare `pytest` all print it; make test must not turn it off."""
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--durations=25" in options["addopts"].split()
    make_test = (ROOT / "Makefile").read_text().split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "pytest" in make_test and "durations" not in make_test


@pytest.mark.slow
def test_editing_a_shared_module_makes_dvc_rerun_the_stages_that_import_it(
    pipeline_project: Project,
) -> None:
    """In the real pipeline run: a change to metrics.py is seen by evaluate and promote."""

    def stale() -> set[str]:
        return set(json.loads(pipeline_project.dvc("status", "--json").stdout))

    module = pipeline_project.root / "pipeline" / "metrics.py"
    original = module.read_text()
    before = stale()  # the fixture ran `dvc repro promote`: package has not run there
    assert {"prepare", "train", "evaluate", "promote"}.isdisjoint(before)
    try:
        module.write_text(original + "\n# a change\n")
        after = stale()
    finally:
        module.write_text(original)
    assert after - before == {"evaluate", "promote"}
    assert stale() == before


# Size limits: a module a reader can hold, a function that does one named thing.
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
LONG_REASON = "Long because"


def package_files() -> list[Path]:
    return sorted(
        f
        for p in ("pipeline", "serving", "monitoring", "mlstack")
        for f in (ROOT / p).rglob("*.py")
    )


def test_no_module_is_over_500_lines() -> None:
    long = {
        f.relative_to(ROOT).as_posix(): lines
        for f in package_files()
        if (lines := len(f.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"split these modules (over {MAX_MODULE_LINES} lines): {long}"


def long_functions(source: str) -> dict[str, int]:
    """Functions (methods included) over the limit whose docstring gives no reason."""
    found = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            reason = LONG_REASON in (ast.get_docstring(node) or "")
            if lines > MAX_FUNCTION_LINES and not reason:
                found[f"{node.name} (line {node.lineno})"] = lines
    return found


def test_no_function_is_over_60_lines_without_a_reason() -> None:
    """Over 60 lines, a function's docstring says why on a line starting "Long because"."""
    long = {
        f"{f.relative_to(ROOT).as_posix()}: {name}": lines
        for f in package_files()
        for name, lines in long_functions(f.read_text()).items()
    }
    assert long == {}, f"split these functions or say why they are long: {long}"


def test_the_function_check_sees_a_long_function_and_its_reason() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    assert list(long_functions(f"def f():\n{body}")) == ["f (line 1)"]
    assert long_functions(f'def f():\n    """{LONG_REASON} it is a table."""\n{body}') == {}


def imported_names(file: Path) -> set[str]:
    """Every absolute module name ``file`` imports, anywhere in its body, and for
    ``from a import b`` also ``a.b`` (b may be a module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return names


def python_files(folder: str) -> list[Path]:
    # A tool's own environment (bench/nannyml/.venv after a plain `uv sync` there) is not ours.
    return sorted(p for p in (ROOT / folder).rglob("*.py") if ".venv" not in p.parts)


def test_no_test_module_is_imported_by_another() -> None:
    """Shared test helpers live in conftest.py or a helper module, never in a test_*.py."""
    found = {
        file.relative_to(ROOT).as_posix(): sorted(
            name for name in imported_names(file) if name.split(".")[-1].startswith("test_")
        )
        for folder in ("tests", "bench", "testbeds")
        for file in python_files(folder)
    }
    assert {f: names for f, names in found.items() if names} == {}


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [("bench", ("tests",)), ("tests", ("bench",)), ("testbeds", ("tests", "bench"))],
)
def test_bench_and_tests_do_not_import_each_other(folder: str, forbidden: tuple[str, ...]) -> None:
    """What both need (the drift data, the team stack's servers) lives in ``testbeds``."""
    found = {
        file.relative_to(ROOT).as_posix(): sorted(
            n for n in imported_names(file) if n.split(".")[0] in forbidden
        )
        for file in python_files(folder)
    }
    assert {f: names for f, names in found.items() if names} == {}
