"""The operator's page: report size and drift run time, this checkout against another.

Runs ``mlstack drift run --current FILE --no-workspace`` (report, summary, MLflow run;
in this checkout also the history plot and the PNG plots) in a fresh process, from two
code trees side by side (this checkout, and ``--against DIR``, e.g. main exported with
``git archive main | tar -x -C DIR``), each in its own temporary project with an MLflow
store, alternating between the two so both see the same load. Each project accumulates
``--runs`` runs per window size, so the last page's history shows them all.

Data: the drift tests' reference set and 2016 traffic (``testbeds.drift_data``, a model
trained on a sample of 2015), windows of 2,000 and 20,000 labeled rows. Prints Markdown.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.harness import ROOT, header, load_average, markdown, stop_on_sigterm, tool_env

SIZES = (2_000, 20_000)


def project(code: Path, work: Path, name: str, data: object) -> Path:
    """A project root for ``code``'s params.yaml: reference, importance and an MLflow store."""
    from mlflow import MlflowClient

    from pipeline.io import write_json
    from pipeline.paths import IMPORTANCE_FILE, REFERENCE_FILE

    root = work / name
    root.mkdir(parents=True)
    params = yaml.safe_load((code / "params.yaml").read_text())
    params["data"]["path"] = str(ROOT / "data" / "raw" / "reference_2015.parquet")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    reference = root / REFERENCE_FILE
    reference.parent.mkdir(parents=True)
    data.reference.to_parquet(reference)  # type: ignore[attr-defined]
    importance = {"metric": "roc_auc", "importance": data.importance}  # type: ignore[attr-defined]
    write_json(importance, root / IMPORTANCE_FILE)
    store = f"sqlite:///{root / 'mlflow.db'}"
    MlflowClient(tracking_uri=store, registry_uri=store).search_experiments()  # migrations
    return root


def one_run(code: Path, root: Path, current: Path) -> tuple[float, int, int]:
    """Wall seconds of one run, its report.html's bytes and its PNG files' bytes."""
    env = tool_env(MLSTACK_PARAMS=str(root / "params.yaml"))
    env["PYTHONPATH"] = str(code)  # that tree's packages before the installed checkout
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [sys.executable, "-m", "mlstack.cli", "drift", "run", "--current", str(current)]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "--no-workspace"], cwd=root, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 3):
        raise RuntimeError(f"{code}: drift run exited {done.returncode}\n{done.stderr[-2000:]}")
    latest = max((root / "reports" / "drift").glob("2*/report.html"))
    pngs = sum(p.stat().st_size for p in latest.parent.glob("plots/*.png"))
    return seconds, latest.stat().st_size, pngs


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--against", type=Path, required=True, help="the other code tree")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from testbeds.drift_data import build

    data = build(train_rows=20_000, max_iter=60, importance_repeats=2)
    trees = {"this checkout": ROOT, "against": args.against.resolve()}
    results: dict[tuple[str, int], list[tuple[float, int, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="mlstack-bench-page-") as folder:
        work = Path(folder)
        windows = {}
        for rows in SIZES:
            windows[rows] = work / f"window_{rows}.parquet"
            data.year(2016).sample(rows, random_state=rows).to_parquet(windows[rows])
        roots = {
            (name, rows): project(code, work, f"{name.replace(' ', '_')}_{rows}", data)
            for name, code in trees.items()
            for rows in SIZES
        }
        for _ in range(args.runs):
            for rows in SIZES:
                for name, code in trees.items():
                    measured = one_run(code, roots[name, rows], windows[rows])
                    results.setdefault((name, rows), []).append(measured)
    print(header("The operator's page: report size and drift run time"))
    print(f"- compared: {ROOT} against {trees['against']}; load after: {load_average()}\n")
    table = []
    for rows in SIZES:
        base = statistics.median(s for s, _, _ in results["against", rows])
        base_size = results["against", rows][-1][1]
        for name in trees:
            runs = results[name, rows]
            seconds = statistics.median(s for s, _, _ in runs)
            size, pngs = runs[-1][1], runs[-1][2]
            table.append(
                [
                    f"{rows:,}",
                    name,
                    f"{seconds:.2f} ({min(s for s, _, _ in runs):.2f}-"
                    f"{max(s for s, _, _ in runs):.2f})",
                    f"{seconds / base - 1:+.1%}",
                    f"{size:,}",
                    f"{size / base_size - 1:+.2%}",
                    f"{pngs:,}",
                ]
            )
    headers = [
        "window rows",
        "code",
        f"run s, median of {args.runs} (min-max)",
        "time vs against",
        f"report.html bytes (run {args.runs})",
        "size vs against",
        "PNG bytes",
    ]
    print(markdown(headers, table))


if __name__ == "__main__":
    main()
