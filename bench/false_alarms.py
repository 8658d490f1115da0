"""False alarms of the drift job on stable windows: how often it cries wolf.

The 2016-2018 production years are stable against 2015 (same population, same label
relation), so every verdict on a random window of them is a false alarm. This draws
``--windows`` random windows of each size in ``--sizes`` from those years, with their
labels, and runs the job's pure core (``monitoring.drift.compare``, real Evidently) on
each, as ``mlstack drift run`` would: the reference set is the 25% test split of 2015
scored by a model from the project's factory and ``params.yaml`` (trained on the 75%
split), with its permutation importance and the training rows' features (data drift
compares against both, ``drift.reference: all``), as the evaluate stage writes them:
built by ``testbeds.drift_data``, as the drift tests build theirs. Column thresholds are
calibrated once per window size (a temporary cache, as the job's own).

Counted per size: windows with a dataset-level alarm of each kind (data drift, the
multivariate domain classifier, prediction drift, label drift, performance drop
estimated and realized, concept drift, missing values, and any of them), and
column-level alarms (columns flagged as drifted, summed over windows, and windows with
at least one). Prints Markdown, a row per size as it completes; never fails on a count.
``--train-rows 20000 --max-iter 60`` trains the drift tests' quicker model
(tests/monitoring/conftest.py) instead of params.yaml's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.harness import telemetry_off

KINDS = (
    "data_drift",
    "multivariate",
    "prediction_drift",
    "label_drift",
    "estimated_drop",
    "realized_drop",
    "concept_drift",
    "data_quality",
    "any",
)


def alarms(summary: Any) -> dict[str, bool]:
    performance = summary.performance
    found = {
        "data_drift": summary.data_drift.detected is True,
        "multivariate": summary.multivariate.detected is True,
        "prediction_drift": summary.prediction_drift.detected is True,
        "label_drift": summary.label_drift.detected is True,
        "estimated_drop": performance.estimated_drop_detected is True,
        "realized_drop": performance.drop_detected is True,
        "concept_drift": summary.concept_drift.detected is True,
        "data_quality": summary.data_quality.detected is True,
    }
    found["any"] = summary.drift_detected
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,5000", help="window sizes, in rows")
    parser.add_argument("--windows", type=int, default=50, help="windows per size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-rows", type=int, default=None, help="train on a sample")
    parser.add_argument("--max-iter", type=int, default=None, help="boosting iterations")
    args = parser.parse_args(argv)
    telemetry_off()
    from monitoring.drift import compare
    from testbeds.drift_data import build

    started = time.time()
    data = build(args.train_rows, args.max_iter, importance_repeats=None)
    settings, reference, importance = data.settings, data.reference, data.importance
    production = data.production()
    cache = Path(tempfile.mkdtemp(prefix="false-alarms-calibration-"))
    print(f"setup: {time.time() - started:.0f}s", file=sys.stderr)
    print(
        "| window rows | windows | "
        + " | ".join(k.replace("_", " ") for k in KINDS)
        + " | drifted columns (sum) | windows with a drifted column | columns flagged |"
    )
    print("|" + "---|" * (len(KINDS) + 5), flush=True)
    for size in (int(s) for s in args.sizes.split(",")):
        counts: Counter[str] = Counter()
        columns: Counter[str] = Counter()
        windows_with_column = 0
        for index in range(args.windows):
            window = production.sample(size, random_state=args.seed * 100_000 + size + index)
            summary = compare(
                reference,
                window,
                settings,
                importance=importance,
                inputs=data.inputs,
                cache=cache,
            )
            counts.update(k for k, v in alarms(summary).items() if v)
            if index % 10 == 9:
                print(f"{size} rows: {index + 1} windows, {dict(counts)}", file=sys.stderr)
            drifted = [c for c, v in summary.data_drift.columns.items() if v.detected]
            columns.update(drifted)
            windows_with_column += bool(drifted)
        print(f"{size} rows: {dict(counts)} {dict(columns)}", file=sys.stderr)
        flagged = ", ".join(f"{c} {n}" for c, n in columns.most_common()) or "none"
        print(
            f"| {size:,} | {args.windows} | "
            + " | ".join(str(counts[k]) for k in KINDS)
            + f" | {sum(columns.values())} | {windows_with_column} | {flagged} |",
            flush=True,
        )
    print(f"\n{time.time() - started:.0f}s in all", file=sys.stderr)


if __name__ == "__main__":
    main()
