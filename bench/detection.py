"""Detection benchmark: false alarms on stable windows and power on injected shifts, for
mlstack as shipped, Evidently's default DataDriftPreset and NannyML's univariate default.

    uv run python -m bench.detection [--sizes 1000,2000,5000] [--stable 50] [--shifted 5]
        [--datasets employment,randhie] [--seed 0]

Each dataset (bench/detection_data.py) gives a reference set and held-out rows of the same
period. Stable windows are random samples of the held-out rows: every verdict on them is
a false alarm. Shifted windows are such samples with one shift injected
(testbeds/shifts.py) before the model scores them. A window size is run where the
held-out rows hold at least two windows of it.

Counted per dataset and size: on stable windows, the per-column false-alarm rate (flags /
(windows × columns), exact 95% interval) and the windows with any column flagged, with a
dataset verdict, a multivariate verdict, concept drift; on shifted windows, the power:
the shifted column flagged (mean, scale, frequency), the correlation flip seen by any
column / the dataset verdict / the multivariate test, the label flip seen as concept
drift. Prints Markdown tables as each size completes; a detector that raises on a window
is counted as an error, never a failed run.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from bench.detection_data import DATASETS, Testbed
from bench.detection_detectors import Verdict
from bench.harness import telemetry_off
from testbeds import shifts

DETECTORS = ("mlstack", "evidently", "nannyml")
Shift = Callable[[Testbed, pd.DataFrame, np.random.Generator], pd.DataFrame]


def _sigma(t: Testbed) -> float:
    return float(t.reference[t.watch.numeric].astype(float).std())


def _mean(sigmas: float) -> Shift:
    return lambda t, f, _: shifts.mean_shift(f, t.watch.numeric, sigmas, _sigma(t))


def _frequency(points: float) -> Shift:
    return lambda t, f, rng: shifts.frequency(f, t.watch.categorical, t.watch.category, points, rng)


def _labels(t: Testbed, f: pd.DataFrame, _: np.random.Generator) -> pd.DataFrame:
    first, second = t.settings.data.classes or ["0", "1"]
    return shifts.flip_labels(f, t.settings.data.target, t.watch.where(f), (first, second))


SHIFTS: dict[str, Shift] = {
    "mean +0.1σ": _mean(0.1),
    "mean +0.25σ": _mean(0.25),
    "mean +0.5σ": _mean(0.5),
    "scale ×1.5": lambda t, f, _: shifts.scale(f, t.watch.numeric, 1.5),
    "frequency +10 pts": _frequency(10),
    "frequency +25 pts": _frequency(25),
    "correlation flip": lambda t, f, rng: shifts.flip_pairing(f, t.watch.pair[1], rng),
    "label flip": _labels,
}


def _shifted_column(testbed: Testbed, shift: str) -> str:
    return testbed.watch.categorical if shift.startswith("frequency") else testbed.watch.numeric


@dataclass
class Tally:
    """One detector's verdicts on one size's windows (None: it raised)."""

    stable: list[Verdict | None] = field(default_factory=list)
    shifted: dict[str, list[Verdict | None]] = field(default_factory=dict)


def _count(verdicts: list[Verdict | None], test: Callable[[Verdict], bool | None]) -> str:
    done = [v for v in verdicts if v is not None]
    answers = [test(v) for v in done]
    if not done or all(a is None for a in answers):
        return "—"
    errors = len(verdicts) - len(done)
    text = f"{sum(bool(a) for a in answers)}/{len(done)}"
    return text + (f" ({errors} errors)" if errors else "")


def _flagged(column: str) -> Callable[[Verdict], bool]:
    return lambda verdict: verdict.columns.get(column, False)


def _rate(verdicts: list[Verdict | None]) -> str:
    from scipy.stats import binomtest

    done = [v for v in verdicts if v is not None]
    trials = sum(len(v.columns) for v in done)
    if not trials:
        return "—"
    flags = sum(sum(v.columns.values()) for v in done)
    interval = binomtest(flags, trials).proportion_ci(0.95)
    return f"{flags / trials:.2%} ({interval.low:.2%}–{interval.high:.2%})"


def stable_table(tallies: dict[str, Tally]) -> list[str]:
    lines = [
        "| detector | stable windows | per-column false alarms (95% CI) | any column | "
        "dataset verdict | multivariate | concept drift |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, tally in tallies.items():
        v = tally.stable
        lines.append(
            f"| {name} | {len(v)} | {_rate(v)} | {_count(v, lambda x: any(x.columns.values()))} "
            f"| {_count(v, lambda x: x.dataset)} | {_count(v, lambda x: x.multivariate)} "
            f"| {_count(v, lambda x: x.concept)} |"
        )
    return lines


def power_table(testbed: Testbed, tallies: dict[str, Tally]) -> list[str]:
    watch = testbed.watch
    heads = [
        f"{s} ({_shifted_column(testbed, s)})" for s in SHIFTS if s.startswith(("mean", "scale"))
    ]
    heads += [f"{s} ({watch.categorical}={watch.category})" for s in SHIFTS if "freq" in s]
    heads += [
        f"correlation flip {watch.pair[0]}~{watch.pair[1]}: any column / dataset / multivariate",
        f"label flip, {watch.subpopulation}: concept drift",
    ]
    lines = ["| detector | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for name, tally in tallies.items():
        cells = []
        for shift in SHIFTS:
            v = tally.shifted.get(shift, [])
            if shift == "correlation flip":
                cells.append(
                    f"{_count(v, lambda x: any(x.columns.values()))} / "
                    f"{_count(v, lambda x: x.dataset)} / {_count(v, lambda x: x.multivariate)}"
                )
            elif shift == "label flip":
                cells.append(_count(v, lambda x: x.concept))
            else:
                column = _shifted_column(testbed, shift)
                cells.append(_count(v, _flagged(column)))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _thresholds(tallies: dict[str, Tally]) -> str:
    first = next((v for v in tallies["mlstack"].stable if v is not None), None)
    if first is None or not first.thresholds:
        return "—"
    return ", ".join(f"{c} {t}" for c, t in first.thresholds.items())


def _judge(name: str, judge: Callable[[], Verdict]) -> Verdict | None:
    try:
        return judge()
    except Exception as error:  # a figure, never a failed run
        print(f"{name}: {type(error).__name__}: {error}", file=sys.stderr)
        return None


def run_size(
    testbed: Testbed, size: int, args: argparse.Namespace, nannyml_problem: str | None
) -> dict[str, Tally]:
    """Long because it is the benchmark's one loop: draw, shift, score and judge every
    window of one size by every detector, NannyML last in one batch."""
    from bench import detection_detectors as detectors

    reference = detectors.data_reference(testbed)
    cache = Path(tempfile.mkdtemp(prefix=f"mlstack-detection-{testbed.name}-"))
    base = args.seed * 1_000_000 + size * 10
    windows: list[tuple[str | None, pd.DataFrame]] = []
    for index in range(args.stable):
        windows.append((None, testbed.holdout.sample(size, random_state=base + index)))
    for number, (name, inject) in enumerate(SHIFTS.items()):
        for index in range(args.shifted):
            seed = base + 10_000 * (number + 1) + index
            drawn = testbed.holdout.sample(size, random_state=seed)
            windows.append((name, inject(testbed, drawn, np.random.default_rng(seed))))
    tallies = {name: Tally() for name in DETECTORS}
    scored = [(shift, testbed.score(w)) for shift, w in windows]
    for index, (shift, window) in enumerate(scored):
        found = {
            "mlstack": _judge("mlstack", partial(detectors.mlstack, testbed, window, cache)),
            "evidently": _judge(
                "evidently", partial(detectors.evidently, testbed, reference, window)
            ),
        }
        for detector, verdict in found.items():
            _file(tallies[detector], shift, verdict)
        if index % 10 == 9:
            print(f"{testbed.name} {size}: {index + 1}/{len(scored)} windows", file=sys.stderr)
    if nannyml_problem is None:
        try:
            verdicts: list[Verdict | None] = list(
                detectors.nannyml(testbed, reference, [w for _, w in scored], size)
            )
        except RuntimeError as error:
            print(str(error), file=sys.stderr)
            verdicts = [None] * len(scored)
        for (judged, _), verdict in zip(scored, verdicts, strict=True):
            _file(tallies["nannyml"], judged, verdict)
    else:
        del tallies["nannyml"]
    shutil.rmtree(cache, ignore_errors=True)
    return tallies


def _file(tally: Tally, shift: str | None, verdict: Verdict | None) -> None:
    if shift is None:
        tally.stable.append(verdict)
    else:
        tally.shifted.setdefault(shift, []).append(verdict)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,5000", help="window sizes, in rows")
    parser.add_argument("--stable", type=int, default=50, help="stable windows a size")
    parser.add_argument("--shifted", type=int, default=5, help="windows a shift and size")
    parser.add_argument("--datasets", default=",".join(DATASETS), help=", ".join(DATASETS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        parser.error(f"--datasets: unknown {', '.join(unknown)} (known: {', '.join(DATASETS)})")
    telemetry_off()
    from bench.detection_detectors import nannyml_ready, takes

    started = time.time()
    problem = nannyml_ready()
    if problem:
        print(f"NannyML row left out: {problem}", file=sys.stderr)
    print(
        f"compare takes inputs (drift.reference: all): {takes('inputs')}, "
        f"a calibration cache: {takes('cache')}",
        flush=True,
    )
    for name in names:
        testbed = DATASETS[name]()
        print(f"\n## {name}: {testbed.source}", flush=True)
        print(
            f"reference set {len(testbed.reference):,} rows, training split "
            f"{len(testbed.inputs):,}, held out {len(testbed.holdout):,}",
            flush=True,
        )
        for size in (int(s) for s in args.sizes.split(",")):
            if 2 * size > len(testbed.holdout):
                print(f"\n{size:,}-row windows: skipped (fewer than two windows held out)")
                continue
            begun = time.time()
            tallies = run_size(testbed, size, args, problem)
            print(f"\n### {name}, {size:,}-row windows ({time.time() - begun:.0f}s)\n")
            print("\n".join(stable_table(tallies)) + "\n")
            print("\n".join(power_table(testbed, tallies)), flush=True)
            print(f"\nmlstack's thresholds: {_thresholds(tallies)}", flush=True)
    print(f"\n{time.time() - started:.0f}s in all", flush=True)


if __name__ == "__main__":
    main()
