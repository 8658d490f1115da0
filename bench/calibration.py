"""What calibrated column thresholds and the larger reference cost a drift run.

``monitoring.drift.compare`` (the drift job's core, real Evidently) on windows of the
2016-2018 production years (sampled with replacement beyond the rows there are), scored
by the drift tests' quick model (``testbeds.drift_data``), in three setups side by side in
one process, each window size in turn:

- ``before``: the drift job as it judged until calibration: ``drift.reference: test``,
  ``drift.calibration.enabled: false`` (Evidently's fixed thresholds), no domain classifier;
- ``cold``: as shipped (``params.yaml``), with an empty calibration cache: the
  calibration is computed in this run;
- ``warm``: as shipped, the cache the cold run filled: what every later run of the
  schedule pays.

Each figure is the median of ``--rounds`` runs (the cold one gets a fresh cache each
round). Prints Markdown; never fails on a timing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import header, load_average, markdown

SIZES = (2_000, 100_000)


def _settings(base: Any, before: bool) -> Any:
    if not before:
        return base
    drift = base.drift.model_copy(
        update={
            "reference": "test",
            "calibration": base.drift.calibration.model_copy(update={"enabled": False}),
            "multivariate": base.drift.multivariate.model_copy(update={"enabled": False}),
        }
    )
    return base.model_copy(update={"drift": drift})


def _timed(data: Any, window: Any, settings: Any, cache: Path | None) -> float:
    from monitoring.drift import compare

    started = time.perf_counter()
    compare(
        data.reference,
        window,
        settings,
        importance=data.importance,
        inputs=data.inputs,
        cache=cache,
    )
    return time.perf_counter() - started


def measure(sizes: list[int], rounds: int) -> list[list[str]]:
    from testbeds.drift_data import build

    data = build(train_rows=20_000, max_iter=60, importance_repeats=2)
    production = data.production()
    rows = []
    for size in sizes:
        window = production.sample(size, replace=size > len(production), random_state=size)
        times: dict[str, list[float]] = {"before": [], "cold": [], "warm": []}
        for _ in range(rounds):
            times["before"].append(_timed(data, window, _settings(data.settings, True), None))
            with tempfile.TemporaryDirectory() as folder:
                cache = Path(folder)
                times["cold"].append(_timed(data, window, data.settings, cache))
                times["warm"].append(_timed(data, window, data.settings, cache))
        median = {k: statistics.median(v) for k, v in times.items()}
        rows.append(
            [
                f"{size:,}",
                f"{median['before']:.1f}",
                f"{median['cold']:.1f}",
                f"{median['warm']:.1f}",
                f"{median['cold'] / median['before']:.2f}",
                f"{median['warm'] / median['before']:.2f}",
            ]
        )
        print(f"window {size:,}: done (load {load_average()})", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(header("Calibration's cost on a drift run (monitoring.drift.compare)"))
    rows = measure(sizes, args.rounds)
    print(
        markdown(
            ["window rows", "before (s)", "cold (s)", "warm (s)", "cold/before", "warm/before"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
