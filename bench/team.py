"""Team-stack benchmark: ``dvc repro`` and ``mlstack drift run`` against an MLflow tracking
server on PostgreSQL with S3 artifacts, beside the embedded store, as a ratio.

Two temporary copies of the project (bench/pipeline.py's ``copy_project``: the code,
``dvc.yaml``, ``params.yaml`` and the shipped ``data/raw``, as fresh git + DVC repos):

- embedded: the default, SQLite ``mlflow.db`` and ``mlartifacts/`` in the copy;
- team: ``MLFLOW_TRACKING_URI`` at a real ``mlflow server`` (PostgreSQL backend, S3
  artifacts through moto's S3 server, the same servers the team tests start, see
  testbeds/team_servers.py) and the Evidently workspace on ``s3://``.

Each copy runs a cold ``dvc repro`` (prepare, train, evaluate, promote, package), then
``mlstack drift run --current FILE`` on production rows without predictions, so the job
loads the champion from the registry (from S3 in the team copy), scores, compares, logs
its run and adds its snapshots to the workspace. The two setups alternate for each step.
Prints Markdown; never fails on a timing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from bench.harness import ROOT, header, load_average, markdown, stop_on_sigterm, versions
from bench.pipeline import Repro, copy_project, repro

DRIFT_ROWS = 10_000


def on_s3(root: Path, workspace: str) -> None:
    path = root / "params.yaml"
    params: dict[str, Any] = yaml.safe_load(path.read_text())
    params["drift"]["workspace"] = workspace
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def drift(root: Path, env: dict[str, str], current: Path, log: Path) -> tuple[float, int]:
    mlstack = str(Path(sys.executable).parent / "mlstack")
    started = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.run(
            [mlstack, "drift", "run", "--current", str(current)],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=3600,
        ).returncode  # fmt: skip
    return time.perf_counter() - started, code


def run(keep: bool) -> dict[str, dict[str, Any]]:
    sys.path.insert(0, str(ROOT))
    from testbeds.team_servers import BUCKET, start_team_stack

    work = Path(tempfile.mkdtemp(prefix="mlstack-bench-team-"))
    results: dict[str, dict[str, Any]] = {}
    stack = start_team_stack(work, copy_env())
    try:
        roots, envs = {}, {}
        for name in ("embedded", "team"):
            roots[name] = work / name
            roots[name].mkdir()
            envs[name] = copy_project(roots[name], work / f"bentoml-{name}")
        for name in ("embedded", "team"):  # `mlstack` reads the copy's params, not ours
            envs[name]["MLSTACK_PARAMS"] = str(roots[name] / "params.yaml")
        envs["team"].update(stack.client_env)
        on_s3(roots["team"], f"s3://{BUCKET}/workspace")
        for name in ("embedded", "team"):
            done: Repro = repro("cold", roots[name], envs[name], work / f"repro-{name}.log")
            results[name] = {"repro": done}
            print(f"{name}: dvc repro {done.seconds:.1f} s, exit {done.exit} "
                  f"(load {load_average()})", file=sys.stderr)  # fmt: skip
        production = pd.read_parquet(ROOT / "data" / "raw" / "production_2016_2018.parquet")
        current = work / "current.parquet"
        production.head(DRIFT_ROWS).to_parquet(current, index=False)
        for name in ("embedded", "team"):
            seconds, code = drift(roots[name], envs[name], current, work / f"drift-{name}.log")
            results[name]["drift"] = (seconds, code)
            print(f"{name}: drift run {seconds:.1f} s, exit {code} (load {load_average()})",
                  file=sys.stderr)  # fmt: skip
        if any(r["repro"].exit or r["drift"][1] for r in results.values()):
            print(f"a run failed: logs in {work}", file=sys.stderr)
            keep = True
    finally:
        stack.stop()
        if keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return results


def copy_env() -> dict[str, str]:
    from bench.harness import tool_env

    env = tool_env()
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def table(results: dict[str, dict[str, Any]]) -> str:
    embedded, team = results["embedded"], results["team"]
    stages = ["prepare", "train", "evaluate", "promote", "package"]
    rows: list[list[Any]] = []
    for stage in [None, *stages]:
        pick = (lambda r: r["repro"].seconds) if stage is None else (
            lambda r, s=stage: r["repro"].stages.get(s, float("nan")))  # fmt: skip
        a, b = pick(embedded), pick(team)
        rows.append([f"dvc repro{'' if stage is None else f' · {stage}'}", f"{a:.1f}",
                     f"{b:.1f}", f"{b / a:.2f}"])  # fmt: skip
    a, b = embedded["drift"][0], team["drift"][0]
    rows.append([f"mlstack drift run --current ({DRIFT_ROWS:,} rows)", f"{a:.1f}", f"{b:.1f}",
                 f"{b / a:.2f}"])  # fmt: skip
    return markdown(["step", "embedded s", "server + PostgreSQL + S3 s", "ratio"], rows)


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects")
    args = parser.parse_args()
    results = run(args.keep)
    print(header("Team stack: the tracking server on PostgreSQL + S3 against the embedded store"))
    print(f"- versions: {versions('dvc', 'mlflow', 'psycopg', 'moto', 'bentoml')}")
    exits = {name: (r["repro"].exit, r["drift"][1]) for name, r in results.items()}
    print(f"- exit codes (repro, drift): {exits}")
    print()
    print(table(results))


if __name__ == "__main__":
    main()
