"""Pipeline benchmark: ``dvc repro`` cold, again with nothing to do, and after one change.

Runs in a temporary copy of the project (the code, ``dvc.yaml``, ``params.yaml`` and the
shipped ``data/raw``, as a fresh git + DVC repository with its own MLflow store and
BentoML home), so the project's own store, cache and lock are untouched:

1. cold: ``dvc repro`` with nothing cached: prepare, train, evaluate, promote, package;
2. no-op: ``dvc repro`` again: every stage is up to date;
3. one hyperparameter: ``train.hist_gradient_boosting.learning_rate`` changed, then
   ``dvc repro``: train and what follows it re-run, prepare does not.

Each run is timed from start to exit; a stage's time is from its "Running stage" line to
the next one (or the end). Prints Markdown.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.harness import (
    ROOT,
    header,
    load_average,
    markdown,
    stop_on_sigterm,
    tool_env,
    versions,
)

COPIED = ("pipeline", "serving", "monitoring")
FILES = ("dvc.yaml", "params.yaml", "bentofile.yaml", ".gitignore", ".dvcignore")
STAGE_LINE = re.compile(r"Running stage '([^']+)'")
CHANGE = ("train", "hist_gradient_boosting", "learning_rate")


@dataclass
class Repro:
    name: str
    seconds: float
    exit: int
    stages: dict[str, float] = field(default_factory=dict)


def copy_project(root: Path, bentoml_home: Path) -> dict[str, str]:
    """The project in ``root`` as a fresh git + DVC repo; the env to run its tools in.

    The BentoML home is outside ``root``: inside, each Bento build would copy the last.
    """
    for package in COPIED:
        shutil.copytree(
            ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in FILES:
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "data" / "raw", root / "data" / "raw")
    shutil.copytree(ROOT / "data" / "retrain", root / "data" / "retrain")  # empty: no retrain
    venv_bin = str(Path(sys.executable).parent)
    env = tool_env(
        PATH=f"{venv_bin}:{tool_env().get('PATH', '')}",
        MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}",
        BENTOML_HOME=str(bentoml_home),
        GIT_AUTHOR_NAME="mlstack bench",
        GIT_AUTHOR_EMAIL="bench@mlstack.invalid",
        GIT_COMMITTER_NAME="mlstack bench",
        GIT_COMMITTER_EMAIL="bench@mlstack.invalid",
    )
    for key in ("MLSTACK_PARAMS", "MLSTACK_CAPTURE_PATH"):
        env.pop(key, None)
    for command in (
        ["git", "init", "-q"],
        [sys.executable, "-m", "dvc", "init", "-q"],
        [sys.executable, "-m", "dvc", "config", "core.analytics", "false"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "bench project"],
    ):
        subprocess.run(command, cwd=root, env=env, check=True, capture_output=True, timeout=300)
    return env


def repro(name: str, root: Path, env: dict[str, str], log: Path) -> Repro:
    """``dvc repro`` in ``root``, timed, with the time each stage took."""
    started = time.perf_counter()
    marks: list[tuple[str, float]] = []
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "dvc", "repro"],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            out.write(line)
            found = STAGE_LINE.search(line)
            if found:
                marks.append((found.group(1), time.perf_counter()))
        code = process.wait(timeout=3600)
    ended = time.perf_counter()
    stages = {
        stage: (marks[i + 1][1] if i + 1 < len(marks) else ended) - at
        for i, (stage, at) in enumerate(marks)
    }
    return Repro(name, ended - started, code, stages)


def change_param(root: Path, keys: tuple[str, ...], factor: float) -> Any:
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    section = params
    for key in keys[:-1]:
        section = section[key]
    section[keys[-1]] = round(section[keys[-1]] * factor, 6)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return section[keys[-1]]


def run(keep: bool) -> list[Repro]:
    work = Path(tempfile.mkdtemp(prefix="mlstack-bench-pipeline-"))
    root = work / "project"
    root.mkdir()
    results = []
    try:
        env = copy_project(root, work / "bentoml")
        for name in ("cold", "no-op"):
            results.append(repro(name, root, env, work / f"repro-{name}.log"))
            report(results[-1])
        value = change_param(root, CHANGE, 0.5)
        name = f"{'.'.join(CHANGE)} → {value}"
        results.append(repro(name, root, env, work / "repro-change.log"))
        report(results[-1])
        if any(r.exit for r in results):
            print(f"a dvc repro failed: logs in {work}", file=sys.stderr)
            keep = True
    finally:
        if keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return results


def report(result: Repro) -> None:
    stages = ", ".join(f"{s} {t:.1f} s" for s, t in result.stages.items()) or "none"
    print(
        f"{result.name}: {result.seconds:.1f} s, exit {result.exit}, stages run: {stages} "
        f"(load {load_average()})",
        file=sys.stderr,
    )


def tables(results: list[Repro]) -> str:
    stages = ["prepare", "train", "evaluate", "promote", "package"]
    rows = [
        [
            r.name,
            f"{r.seconds:.1f}",
            *(f"{r.stages[s]:.1f}" if s in r.stages else "–" for s in stages),
            r.exit,
        ]
        for r in results
    ]
    return markdown(["dvc repro", "wall s", *(f"{s} s" for s in stages), "exit"], rows)


def training_rows() -> int:
    import pyarrow.parquet as pq

    from pipeline.settings import load_settings

    settings = load_settings()
    return int(pq.ParquetFile(settings.path(settings.data.path)).metadata.num_rows)


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args()
    results = run(args.keep)
    print(header("Pipeline: dvc repro cold, no-op and after one hyperparameter change"))
    print(f"- versions: {versions('dvc', 'mlflow', 'scikit-learn', 'bentoml')}")
    print(f"- data: the shipped {training_rows():,} training-period rows; – means not run")
    print()
    print(tables(results))


if __name__ == "__main__":
    main()
