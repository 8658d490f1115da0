"""Drift job at scale: ``mlstack drift run`` on a capture-log window, sampled vs whole.

Writes capture logs (``predictions/`` and ``labels/`` Parquet partitions, as
:mod:`monitoring.capture` writes them) of one busy day by resampling the production rows in
``data/raw/``, scored once by the champion (with pyarrow, ``take`` on one Arrow table: no
per-row Python). A share of the rows (``--labeled``) gets its label back an hour later.
Scenarios (``params.yaml``'s, injected into the resampled rows): ``production`` (no
drift), ``covariate_shift`` (inputs shifted, rescored) and ``concept_flip`` (labels
flipped for ages 40-59).

Each window is judged twice, each run a fresh process timed from start to exit with its
peak RSS (``ru_maxrss`` of that child), both with ``--no-mlflow --no-workspace``:

- ``sampled``: this checkout's ``mlstack drift run --since --until`` (streaming read,
  ``drift.sample_rows`` sample);
- ``baseline``: the same command in another checkout (``--baseline``, default
  ``/work/main``: the old path, the whole window in pandas), with its own ``.venv`` and
  ``params.yaml``, under an address-space cap (``--baseline-cap-gib``) so a window it cannot
  hold fails instead of swapping the machine.

Prints Markdown: time and peak RSS side by side, then per scenario the verdicts and how
each column's drift score differs between the sample and the whole window.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.harness import ROOT, header, load_average, markdown, stop_on_sigterm, tool_env

DAY = "2026-01-01"
SINCE, UNTIL = f"{DAY}T00:00:00Z", "2026-01-02T00:00:00Z"
CHUNK = 500_000  # rows per Parquet file written

# Runs argv[3:] with the address space capped at argv[2] GiB (0: none); writes its wall
# time, peak RSS and exit status to argv[1], its stdout beside it.
MEASURE = """
import json, resource, subprocess, sys, time
cap = float(sys.argv[2])
def limit():
    if cap > 0:
        size = int(cap * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
started = time.perf_counter()
done = subprocess.run(sys.argv[3:], capture_output=True, text=True, preexec_fn=limit)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
tail = done.stderr.strip().splitlines()[-1:] if done.returncode else []
with open(sys.argv[1], "w") as out:
    json.dump({"seconds": seconds, "peak_bytes": peak, "exit": done.returncode,
               "stdout": done.stdout, "error": tail}, out)
"""


@dataclass
class Run:
    scenario: str
    rows: int
    path: str
    seconds: float
    peak_bytes: int
    exit: int
    summary: dict[str, Any] | None
    error: str


def scored_rows(settings: Any) -> Any:
    """The production rows scored by the champion, with their labels, as the log holds them."""
    from bench.drift import capture_frame

    return capture_frame(settings)


def scenario_frame(frame: Any, name: str, settings: Any) -> Any:
    """``frame`` with a params.yaml scenario's shift injected (inputs rescored)."""
    from mlstack.scenarios import inject
    from pipeline.model import predict_frame
    from pipeline.schema import coerce_features
    from pipeline.tracking import client, find_champion, load_model, tracking_uri

    if name == "production":
        return frame
    data = settings.data
    scenario = settings.scenarios[name]
    features = frame[data.features.all]
    shifted, labels = inject(
        features, frame[data.target], scenario, [str(c) for c in data.classes or []]
    )
    out = frame.copy()
    out[data.target] = labels
    if scenario.add or scenario.reassign:
        champion = find_champion(client(settings), settings)
        model = load_model(f"models:/{champion.name}/{champion.version}", tracking_uri(settings))
        coerced = coerce_features(shifted, data)
        scored = predict_frame(model, coerced)
        for column in coerced.columns:
            out[column] = coerced[column]
        for column in scored.columns:
            out[column] = scored[column].to_numpy()
    return out


def write_log(frame: Any, rows: int, folder: Path, labeled: float, seed: int, target: str) -> None:
    """``rows`` resampled rows over one day as a capture log, ``labeled`` of them labeled."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame.drop(columns=[target]), preserve_index=False)
    labels = pa.array(frame[target].astype(str).to_numpy())
    rng = np.random.default_rng(seed)
    start = np.datetime64(f"{DAY}T00:00:00", "us").astype("int64")
    step = 86_400_000_000 // rows
    predictions = folder / "predictions" / f"date={DAY}"
    answers = folder / "labels" / f"date={DAY}"
    predictions.mkdir(parents=True)
    answers.mkdir(parents=True)
    for first in range(0, rows, CHUNK):
        size = min(CHUNK, rows - first)
        picked = rng.integers(0, table.num_rows, size)
        ids = pc.utf8_lpad(pc.cast(pa.array(np.arange(first, first + size)), pa.string()), 32, "0")
        stamps = pa.array(start + step * np.arange(first, first + size), pa.timestamp("us", "UTC"))
        chunk = table.take(picked)
        chunk = pa.table(
            {"request_id": ids, "timestamp": stamps, **{c: chunk[c] for c in chunk.column_names}}
        )
        pq.write_table(chunk, predictions / f"{first // CHUNK:05d}.parquet")
        back = np.flatnonzero(rng.random(size) < labeled)
        answer = pa.table(
            {
                "request_id": ids.take(back),
                "timestamp": pa.array(
                    start + step * (first + back) + 3_600_000_000, pa.timestamp("us", "UTC")
                ),
                "label": labels.take(picked[back]),
            }
        )
        pq.write_table(answer, answers / f"{first // CHUNK:05d}.parquet")


def params_for(checkout: Path, work: Path, log: Path, name: str) -> Path:
    """``checkout``'s params.yaml with the capture log and the outputs in ``work``."""
    raw = yaml.safe_load((checkout / "params.yaml").read_text())
    raw["capture"]["path"] = str(log)
    raw["drift"]["reports"] = str(work / name / "reports")
    raw["drift"]["state"] = str(work / name / "state.json")
    raw["data"]["path"] = str(checkout / raw["data"]["path"])
    path = work / name / "params.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def measure(
    checkout: Path, params: Path, reference: Path, cap: float, work: Path
) -> dict[str, Any]:
    out = work / "measure.json"
    command = [str(checkout / ".venv" / "bin" / "mlstack"), "drift", "run", "--json"]
    command += ["--since", SINCE, "--until", UNTIL, "--reference", str(reference)]
    command += ["--no-mlflow", "--no-workspace"]
    env = tool_env(MLSTACK_PARAMS=str(params))
    subprocess.run(
        [sys.executable, "-c", MEASURE, str(out), str(cap), *command],
        cwd=checkout,
        env=env,
        check=True,
        timeout=7200,
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def judge(scenario: str, rows: int, log: Path, args: argparse.Namespace, work: Path) -> list[Run]:
    runs = []
    for path, checkout, cap in (
        ("sampled", ROOT, 0.0),
        ("baseline", args.baseline, args.baseline_cap_gib),
    ):
        if path == "baseline" and rows > args.baseline_max_rows:
            continue
        params = params_for(checkout, work, log, f"{path}-{scenario}-{rows}")
        raw = measure(checkout, params, args.reference, cap, work)
        summary = json.loads(raw["stdout"]) if raw["exit"] == 0 and raw["stdout"] else None
        run = Run(
            scenario,
            rows,
            path,
            raw["seconds"],
            raw["peak_bytes"],
            raw["exit"],
            summary,
            " ".join(raw["error"]),
        )
        runs.append(run)
        print(
            f"{scenario} {rows:,} {path}: {run.seconds:.1f} s, peak "
            f"{run.peak_bytes / 2**20:,.0f} MiB, exit {run.exit} {run.error} "
            f"(load {load_average()})",
            file=sys.stderr,
        )
    return runs


def verdicts(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return "failed"
    kinds = ("data_drift", "prediction_drift", "performance", "concept_drift", "data_quality")
    flags = [f"{k}={summary[k]['detected']}" for k in kinds]
    return ", ".join(flags)


def tables(runs: list[Run]) -> str:
    timing = [
        [
            r.scenario,
            f"{r.rows:,}",
            r.path,
            f"{r.seconds:.1f}",
            f"{r.peak_bytes / 2**20:,.0f}",
            r.exit,
            ""
            if r.summary is None
            else f"{r.summary['sample']['sample_rows']:,}"
            if "sample" in r.summary
            else "whole window",
            r.error[:80],
        ]
        for r in runs
    ]
    out = markdown(
        ["scenario", "rows", "path", "wall s", "peak RSS MiB", "exit", "rows drifted", "error"],
        timing,
    )
    sampled = {(r.scenario, r.rows): r for r in runs if r.path == "sampled"}
    scale = sorted({r.rows for r in sampled.values()})
    growth = []
    for small, large in zip(scale, scale[1:], strict=False):
        a, b = sampled.get(("production", small)), sampled.get(("production", large))
        if a and b:
            growth.append(
                [
                    f"{small:,} → {large:,}",
                    f"×{b.seconds / a.seconds:.2f}",
                    f"×{b.peak_bytes / a.peak_bytes:.2f}",
                ]
            )
    if growth:
        out += "\n\nSampled path, growth with rows (production):\n\n"
        out += markdown(["rows", "wall time", "peak RSS"], growth)
    for r in runs:
        if r.path != "sampled":
            continue
        base = next(
            (
                b
                for b in runs
                if b.path == "baseline" and (b.scenario, b.rows) == (r.scenario, r.rows)
            ),
            None,
        )
        if base is None or base.summary is None or r.summary is None:
            continue
        out += f"\n\n{r.scenario}, {r.rows:,} rows: sampled vs whole window\n\n"
        out += markdown(
            ["path", "verdicts"],
            [["sampled", verdicts(r.summary)], ["whole", verdicts(base.summary)]],
        )
        rows = []
        for section in ("data_drift", "prediction_drift"):
            for column, mine in r.summary[section]["columns"].items():
                theirs = base.summary[section]["columns"].get(column)
                if theirs is None:
                    continue
                rows.append(
                    [
                        column,
                        mine["method"],
                        f"{theirs['score']:.4f}",
                        f"{mine['score']:.4f}",
                        f"{mine['score'] - theirs['score']:+.4f}",
                        f"{mine['threshold']:g}",
                        f"{theirs['detected']} / {mine['detected']}",
                    ]
                )
        for section, key in (
            ("performance", "estimated"),
            ("performance", "realized"),
            ("concept_drift", "gap"),
            ("concept_drift", "p_value"),
        ):
            a, b = base.summary[section].get(key), r.summary[section].get(key)
            if a is not None and b is not None:
                rows.append(
                    [f"{section}.{key}", "", f"{a:.4f}", f"{b:.4f}", f"{b - a:+.4f}", "", ""]
                )
        out += "\n\n" + markdown(
            [
                "column",
                "method",
                "whole",
                "sample",
                "sample − whole",
                "threshold",
                "detected (whole / sample)",
            ],
            rows,
        )
    return out


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="rows per window")
    parser.add_argument(
        "--scenarios",
        default="production,covariate_shift,concept_flip",
        help="judged at the smallest size; the larger sizes judge production only",
    )
    parser.add_argument("--labeled", type=float, default=0.2, help="share of rows labeled")
    parser.add_argument("--baseline", type=Path, default=Path("/work/main"))
    parser.add_argument("--baseline-cap-gib", type=float, default=16.0)
    parser.add_argument("--baseline-max-rows", type=int, default=10_000_000)
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="reference set (default: this checkout's, else the baseline's)",
    )
    parser.add_argument("--work", type=Path, default=None, help="where the logs go (temporary)")
    args = parser.parse_args()
    from pipeline.paths import REFERENCE_FILE
    from pipeline.settings import load_settings

    settings = load_settings()
    if args.reference is None:
        mine = settings.path(REFERENCE_FILE)
        args.reference = mine if mine.exists() else args.baseline / REFERENCE_FILE
    sizes = [int(s) for s in args.sizes.split(",")]
    scenarios = args.scenarios.split(",")
    frame = scored_rows(settings)
    work = Path(tempfile.mkdtemp(prefix="mlstack-bench-drift-scale-", dir=args.work))
    runs: list[Run] = []
    try:
        for rows in sizes:
            for name in scenarios if rows == min(sizes) else ["production"]:
                log = work / f"log-{name}-{rows}"
                current = scenario_frame(frame, name, settings)
                write_log(current, rows, log, args.labeled, rows, settings.data.target)
                runs += judge(name, rows, log, args, work)
                shutil.rmtree(log)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(header("Drift job at scale: sampled window against the whole window"))
    print(f"- labeled share {args.labeled}; baseline {args.baseline}; window one day ({DAY})")
    print()
    print(tables(runs))


if __name__ == "__main__":
    main()
