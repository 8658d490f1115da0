"""Test-wide setup: no telemetry, and a real pipeline run in a temporary project.

``pipeline_project`` copies the code, ``dvc.yaml`` and a small sample of the shipped data
into a temporary git repository with its own MLflow store, and runs the real
``dvc repro`` up to ``promote`` there. Tests that need a trained champion and a reference
set (serving, monitoring, the pipeline's own) share that one run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from pipeline.environment import TELEMETRY_OFF
from pipeline.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_ROWS = 8_000

for _key, _value in TELEMETRY_OFF.items():
    os.environ[_key] = _value
# One OpenMP thread in every process the tests start (dvc stages, servers, drift runs):
# `make test` runs two pytest workers on 2 cores, so a second thread has no core of its
# own and spins waiting on the first; training and permutation importance took ~20 %
# more CPU with two threads than with one, for the same models.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@dataclass
class Project:
    """A throw-away copy of the project: its folder, its params and the env to run it in."""

    root: Path
    env: dict[str, str]

    @property
    def settings(self) -> Settings:
        return load_settings(self.root / "params.yaml")

    @property
    def tracking_uri(self) -> str:
        return self.env["MLFLOW_TRACKING_URI"]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command in the project, with the test venv's tools first on PATH."""
        result = subprocess.run(
            list(args), cwd=self.root, env=self.env, capture_output=True, text=True, timeout=900
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "dvc", *args, check=check)

    def copy_to(self, root: Path) -> Project:
        """The project copied to ``root`` with its own MLflow store (a copy of this one's),
        without its drift runs and their state, so a drift run there starts afresh."""
        shutil.copytree(self.root, root, ignore=shutil.ignore_patterns("drift"))
        return Project(root, {**self.env, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"})

    def edit_params(self, change: Callable[[dict[str, Any]], None]) -> None:
        path = self.root / "params.yaml"
        params = yaml.safe_load(path.read_text())
        change(params)
        path.write_text(yaml.safe_dump(params, sort_keys=False))


def project_env(root: Path) -> dict[str, str]:
    """The environment a test project's commands run in: the test venv's tools first on
    PATH, the project's own embedded MLflow store, no telemetry, a git identity."""
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        **TELEMETRY_OFF,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "GIT_AUTHOR_NAME": "mlstack tests",
        "GIT_AUTHOR_EMAIL": "tests@mlstack.invalid",
        "GIT_COMMITTER_NAME": "mlstack tests",
        "GIT_COMMITTER_EMAIL": "tests@mlstack.invalid",
    }
    env.pop("PYTHONPATH", None)
    return env


def make_project(
    root: Path, data: pd.DataFrame, change: Callable[[dict[str, Any]], None] | None = None
) -> Project:
    """Lay out a project in ``root`` with ``data`` as its training file, as a git+DVC repo."""
    for package in ("pipeline", "serving", "monitoring", "mlstack"):
        shutil.copytree(
            ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in ("dvc.yaml", "bentofile.yaml", ".gitignore"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, root / name)
    # No retrain yet: an empty file, as committed. Not this checkout's copy: `make demo`
    # retrains in the checkout and leaves the flipped traffic it learned from there, and a
    # test project's first model would learn it too (no concept drift left to flag).
    (root / "data" / "retrain").mkdir(parents=True)
    pd.DataFrame().to_parquet(root / "data" / "retrain" / "recent.parquet")
    (root / "data" / "raw").mkdir(parents=True)
    data.to_parquet(root / "data" / "raw" / "reference_2015.parquet", index=False)
    for production in (ROOT / "data" / "raw").glob("production_*.parquet"):
        shutil.copy(production, root / "data" / "raw" / production.name)
    project = Project(root, project_env(root))
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    if change is not None:
        project.edit_params(change)
    project.run("git", "init", "-q")
    project.dvc("init", "-q")
    project.dvc("config", "core.analytics", "false")
    project.run("git", "add", "-A")
    project.run("git", "commit", "-qm", "test project")
    return project


def wait_settled(settings: Settings) -> None:
    """Sleep until what was captured by now is inside a default drift window, which ends
    ``capture.flush_seconds`` + 30 s before its run so that rows still in a write-ahead
    segment wait for the next one (issue 26, defect 5)."""
    from monitoring.drift_job.inputs import COMPACTION_SECONDS

    time.sleep(settings.capture.flush_seconds + COMPACTION_SECONDS + 1)


def employment_sample(rows: int = SAMPLE_ROWS, seed: int = 0) -> pd.DataFrame:
    raw = pd.read_parquet(ROOT / "data" / "raw" / "reference_2015.parquet")
    return raw.sample(n=rows, random_state=seed).reset_index(drop=True)


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """A folder ``build`` fills once per test run, whatever the number of pytest-xdist
    workers: the first worker to get here builds it under a file lock, the others wait and
    find it done. Everything in it is read-only afterwards; tests copy what they change."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's basetemp is a folder of the run's own (pytest-N/popen-gwK):
    # its parent is shared by the run's workers and no other run.
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = shared / f"shared-{name}"
    with FileLock(str(folder) + ".lock"):
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed half-way
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a project on 8,000 rows of 2015 after a real ``dvc repro promote``,
    trained once per ``make test`` (the two workers used to train one each, ~1 minute of
    both cores). Read-only: tests take a copy (:func:`copy_project`)."""

    def train(folder: Path) -> None:
        make_project(folder / "project", employment_sample()).dvc("repro", "promote")

    return built_once(tmp_path_factory, "trained", train) / "project"


def copy_project(original: Path, root: Path) -> Project:
    """A copy of the project in ``original``, MLflow store and DVC cache included, whose
    store records its own folder (so its promotions never touch the original's)."""
    from pipeline.tracking import relocate_store

    project = Project(original, project_env(original)).copy_to(root)
    relocate_store(project.settings)
    return project


@pytest.fixture(scope="session")
def pipeline_project(tmp_path_factory: pytest.TempPathFactory, trained_project: Path) -> Project:
    """A trained project of this worker's own: a champion exists."""
    return copy_project(trained_project, tmp_path_factory.mktemp("project") / "project")


# The longest files first (their own --durations, 2 cores): `make test` runs two pytest-xdist
# workers, each taking whole files in collection order (--dist loadfile
# --no-loadscope-reorder), so a long file started last would leave one worker idle at the
# end. A file not named here keeps its place after these.
LONGEST_FIRST = (
    "tests/integration/test_demo_loop.py",  # ~300 s: the whole demo
    "tests/integration/test_retrain_loop.py",  # ~280 s: five dvc repro runs
    "tests/pipeline/test_pipeline_run.py",  # ~190 s
    "tests/team/test_team_loop.py",  # ~150 s: PostgreSQL, S3, mlflow server
)


@pytest.fixture
def no_user_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """No tracking URI from the user: the project's own embedded store is used.

    setenv first so teardown removes what MLflow itself writes into the environment.
    MLflow writes both into the environment; left behind, MLFLOW_REGISTRY_URI sent every
    later subprocess of the session (the package step) to one test's store."""
    from pipeline import tracking

    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.setenv(variable, "unset-by-test")
        monkeypatch.delenv(variable)
    monkeypatch.setattr(tracking, "_configured_uri", None)


@pytest.fixture(autouse=True)
def no_cached_s3_filesystem() -> Iterator[None]:
    """fsspec keeps each S3 filesystem it makes, with the endpoint it read from the
    environment then, and hands it out again for the same arguments: a test's ``s3://``
    read would reach for the S3 server of an earlier test in the same worker (the team
    stack's, or a stopped one). Dropped before and after every test that loaded s3fs."""

    def drop() -> None:
        s3fs = sys.modules.get("s3fs")
        if s3fs is not None:
            s3fs.S3FileSystem.clear_instance_cache()

    drop()
    yield
    drop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within each file, and of the rest, is kept
