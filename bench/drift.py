"""Drift benchmark: ``mlstack drift run --current FILE`` beside Evidently's ``Report.run`` alone.

The current windows (10k, 100k and 1M rows by default) are in the capture log's format
as the drift job reads it back: request id, UTC timestamp, model name and version, the
features, ``prediction``, ``proba_<class>`` and the joined label. They are built from
``data/raw/production_2016_2018.parquet`` and its labels, scored once by the project's
champion, then sampled (with replacement beyond the 208,892 rows there are).

Each measurement is a fresh process, timed from start to exit, with its peak resident
memory (``ru_maxrss`` of that one child):

- ``job``: ``mlstack drift run --current FILE`` with every output: report.html and
  summary.json, the MLflow run, the Evidently workspace snapshot (into a temporary
  project folder and MLflow store, so the project's own are untouched);
- ``job, no outputs``: the same with ``--no-mlflow --no-workspace`` (largest window only:
  what the MLflow run and the workspace snapshot cost);
- ``Evidently``: a process that reads the same file, gives it the plain dtypes the job
  gives it, and runs the same two Evidently reports the job runs (data and prediction
  drift; classification quality and label drift on the labeled rows), built by
  ``monitoring.drift_reports`` so the presets and ``DataDefinition`` are the job's. Its
  ``Report.run`` time (``Dataset.from_pandas`` included) is printed on its own too.

Needs the champion in the project's MLflow store (``uv run dvc repro``). Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import (
    ROOT,
    header,
    load_average,
    markdown,
    stop_on_sigterm,
    tool_env,
    versions,
)

SIZES = (10_000, 100_000, 1_000_000)

# Runs the command in argv[2:] and writes its wall time and peak RSS to argv[1]. A fresh
# wrapper per measurement, because RUSAGE_CHILDREN keeps the maximum over every child.
MEASURE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
with open(sys.argv[1], "w") as out:
    json.dump({"seconds": seconds, "peak_bytes": peak, "exit": code}, out)
"""


@dataclass
class Measured:
    kind: str
    rows: int
    seconds: float
    peak_bytes: int
    exit: int
    report_seconds: float | None = None


def capture_frame(settings: Any) -> Any:
    """Every production row, labeled and scored once by the champion, as the log holds it."""
    import pandas as pd

    from pipeline.labels import normalize_labels
    from pipeline.model import predict_frame
    from pipeline.schema import coerce_features
    from pipeline.tracking import champion_uri, client, find_champion, load_model, tracking_uri

    try:
        champion = find_champion(client(settings), settings)
        model = load_model(f"models:/{champion.name}/{champion.version}", tracking_uri(settings))
    except Exception as error:  # noqa: BLE001 - any failure means: no champion to score with
        sys.exit(
            f"no champion {champion_uri(settings)} in the project's MLflow store ({error}); "
            "train one first: dvc repro"
        )
    data = settings.data
    raw = pd.read_parquet(ROOT / "data" / "raw" / "production_2016_2018.parquet")
    labels = pd.read_parquet(ROOT / "data" / "raw" / "production_2016_2018_labels.parquet")
    raw = raw.merge(labels, on=data.id, how="left", validate="one_to_one")
    features = coerce_features(raw, data)
    scored = predict_frame(model, features)
    frame = pd.concat([features, scored], axis=1)
    frame[data.target] = normalize_labels(raw[data.target])
    frame.insert(0, "model_version", champion.version)
    frame.insert(0, "model_name", champion.name)
    return frame


def window(frame: Any, rows: int, seed: int) -> Any:
    """``rows`` rows of ``frame`` (with replacement when it has fewer), fresh ids and times."""
    import pandas as pd

    sample = frame.sample(n=rows, replace=rows > len(frame), random_state=seed)
    sample = sample.reset_index(drop=True)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    stamps = start + pd.to_timedelta(range(rows), unit="s")
    sample.insert(0, "timestamp", pd.Series(stamps).astype("datetime64[ns, UTC]"))
    sample.insert(0, "request_id", [uuid.uuid4().hex for _ in range(rows)])
    return sample


def measure(kind: str, rows: int, command: list[str], env: dict[str, str], work: Path) -> Measured:
    out = work / f"measure-{uuid.uuid4().hex}.json"
    subprocess.run(
        [sys.executable, "-c", MEASURE, str(out), *command],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=3600,
    )
    raw = json.loads(out.read_text())
    return Measured(kind, rows, raw["seconds"], raw["peak_bytes"], raw["exit"])


def evidently_alone(current: Path, reference: Path, out: Path) -> None:
    """The job's two Evidently reports on the frames in memory, and nothing else."""
    import evidently.metrics
    import evidently.presets  # noqa: F401 - imported before the clock starts
    import pandas as pd

    from monitoring.drift import _classes, _comparable, _plain
    from monitoring.drift_reports import drift_report, performance_report
    from pipeline.schema import PREDICTION, proba_column
    from pipeline.settings import load_settings

    settings = load_settings()
    reference_frame, current_frame = pd.read_parquet(reference), pd.read_parquet(current)
    classes = _classes(reference_frame, settings)
    ref = _plain(reference_frame, settings, classes)
    cur = _plain(current_frame, settings, classes)
    labeled = cur[cur[settings.data.target].notna()]
    probas = [proba_column(c) for c in (classes[-1:] if len(classes) == 2 else classes)]
    started = time.perf_counter()
    features = settings.data.features.all
    compared = [c for c in features if _comparable(ref, c) and _comparable(cur, c)]
    drift_report(ref, cur, settings, [*probas, PREDICTION], compared)
    performance_report(ref, labeled, settings, classes)
    seconds = time.perf_counter() - started
    out.write_text(json.dumps({"report_seconds": seconds}))


def job_params(work: Path) -> Path:
    """params.yaml in a temporary project root: reports, workspace and state land there."""
    folder = work / "project"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "params.yaml", folder / "params.yaml")
    return folder / "params.yaml"


def create_store(params: Path, env: dict[str, str]) -> None:
    """Create the temporary MLflow store before timing: its one-off schema migrations
    would otherwise land in the first measured run."""
    script = (
        "import sys\n"
        "from pipeline.settings import load_settings\n"
        "from pipeline.tracking import MONITORING_EXPERIMENT, configure\n"
        "configure(load_settings(sys.argv[1]), MONITORING_EXPERIMENT)\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(params)], cwd=ROOT, env=env, check=True, timeout=600
    )


def run(sizes: list[int], py_spy: Path | None) -> list[Measured]:
    from pipeline.paths import REFERENCE_FILE
    from pipeline.settings import load_settings

    settings = load_settings()
    reference = settings.path(REFERENCE_FILE)
    if not reference.exists():
        sys.exit(f"no reference set at {reference}: train first (uv run dvc repro)")
    work = Path(tempfile.mkdtemp(prefix="mlstack-bench-drift-"))
    results: list[Measured] = []
    try:
        started = time.perf_counter()
        frame = capture_frame(settings)
        print(
            f"scored {len(frame):,} production rows once in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        params = job_params(work)
        env = tool_env(
            MLFLOW_TRACKING_URI=f"sqlite:///{params.parent / 'mlflow.db'}",
            MLSTACK_PARAMS=str(params),
        )
        mlstack = str(Path(sys.executable).parent / "mlstack")
        create_store(params, env)
        for rows in sizes:
            current = work / f"current-{rows}.parquet"
            window(frame, rows, seed=rows).to_parquet(current, index=False)
            job = [mlstack, "drift", "run", "--current", str(current)]
            job += ["--reference", str(reference)]
            timing = work / f"evidently-{rows}.json"
            alone = [sys.executable, "-m", "bench.drift", "evidently", str(current)]
            alone += [str(reference), str(timing)]
            commands = [("Evidently Report.run alone", alone), ("job, all outputs", job)]
            if rows == max(sizes):  # where the outputs' share of the time is worth knowing
                bare = [*job, "--no-mlflow", "--no-workspace"]
                commands.insert(1, ("job, --no-mlflow --no-workspace", bare))
            for kind, command in commands:
                result = measure(kind, rows, command, env, work)
                if kind.startswith("Evidently") and timing.exists():
                    result.report_seconds = json.loads(timing.read_text())["report_seconds"]
                results.append(result)
                print(
                    f"{rows:>9,} {kind}: {result.seconds:.1f} s, "
                    f"peak {result.peak_bytes / 2**20:,.0f} MiB, exit {result.exit} "
                    f"(load {load_average()})",
                    file=sys.stderr,
                )
            if py_spy is not None and rows == max(sizes):
                profile(job, env, py_spy / f"drift-job-{rows}")
            current.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def profile(command: list[str], env: dict[str, str], out: Path) -> None:
    """py-spy over one full job run (not a measured run): raw stacks and a flame graph."""
    spy = [shutil.which("py-spy") or "py-spy"] if shutil.which("py-spy") else ["uvx", "py-spy"]
    out.parent.mkdir(parents=True, exist_ok=True)
    for fmt, suffix in (("raw", "txt"), ("flamegraph", "svg")):
        target = str(out.with_suffix(f".{suffix}"))
        subprocess.run(
            [*spy, "record", "--format", fmt, "--output", target, "--", *command],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=3600,
        )


def tables(results: list[Measured]) -> str:
    rows = []
    for r in results:
        rows.append(
            [
                f"{r.rows:,}",
                r.kind,
                f"{r.seconds:.1f}",
                f"{r.report_seconds:.1f}" if r.report_seconds is not None else "",
                f"{r.peak_bytes / 2**20:,.0f}",
                r.exit,
            ]
        )
    first = markdown(
        ["rows", "what", "wall s (process)", "Report.run s", "peak RSS MiB", "exit"], rows
    )
    full = {r.rows: r for r in results if r.kind == "job, all outputs"}
    bare = {r.rows: r for r in results if r.kind.startswith("job, --no")}
    alone = {r.rows: r for r in results if r.kind.startswith("Evidently")}
    ratio_rows = []
    sizes = sorted(full)
    for size in sizes:
        job, quiet, evidently = full[size], bare.get(size), alone.get(size)
        if evidently is None:
            continue
        ratio_rows.append(
            [
                f"{size:,}",
                f"{job.seconds / evidently.seconds:.2f}",
                f"{quiet.seconds / evidently.seconds:.2f}" if quiet else "",
                f"{job.seconds / evidently.report_seconds:.2f}" if evidently.report_seconds else "",
            ]
        )
    second = markdown(
        [
            "rows",
            "job / Evidently process",
            "job (no outputs) / Evidently process",
            "job / Report.run alone",
        ],
        ratio_rows,
    )
    growth_rows = []
    for smaller, larger in zip(sizes, sizes[1:], strict=False):
        factor = larger / smaller
        for name, table in (("job, all outputs", full), ("Evidently process", alone)):
            a, b = table.get(smaller), table.get(larger)
            if a is None or b is None:
                continue
            growth_rows.append(
                [
                    f"{smaller:,} → {larger:,} (×{factor:g})",
                    name,
                    f"×{b.seconds / a.seconds:.2f}",
                    f"×{b.peak_bytes / a.peak_bytes:.2f}",
                ]
            )
    third = markdown(["rows", "what", "wall time grows", "peak memory grows"], growth_rows)
    return f"{first}\n\nRatios (wall time):\n\n{second}\n\nGrowth with rows:\n\n{third}"


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    alone = sub.add_parser("evidently", help="(internal) Evidently alone on one file")
    alone.add_argument("current", type=Path)
    alone.add_argument("reference", type=Path)
    alone.add_argument("out", type=Path)
    parser.add_argument(
        "--sizes", default=",".join(str(s) for s in SIZES), help="rows per window, comma-separated"
    )
    parser.add_argument("--py-spy", type=Path, default=None, help="profile the largest job here")
    args = parser.parse_args()
    if args.command == "evidently":
        evidently_alone(args.current, args.reference, args.out)
        return
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results = run(sizes, args.py_spy)
    print(header("Drift job: mlstack drift run --current against Evidently alone"))
    print(f"- versions: {versions('evidently', 'pandas', 'numpy', 'mlflow')}")
    print()
    print(tables(results))


if __name__ == "__main__":
    main()
