"""The report's plots as PNG files, so the MLflow UI shows them beside the run's metrics.

The same figures as the page's inline SVG (:mod:`monitoring.drift_history`,
:func:`monitoring.drift_page.scores_svg`): the performance metric over the last runs with
its band, estimate, realized value and alerts; a regressor's interval coverage against
its nominal level; each feature's drift score against its threshold. Drawn on plain
matplotlib ``Figure`` objects saved by its Agg renderer (no pyplot, no display, no global
state), imported inside the functions so a run without MLflow never loads matplotlib.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from monitoring.drift_history import History
from monitoring.drift_summary import ColumnVerdict
from pipeline.paths import DRIFT_COVERAGE_PLOT, DRIFT_PERFORMANCE_PLOT, DRIFT_SCORES_PLOT

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

ALERT = "#c62828"
# Fixed margins (room for the rotated run names): a layout engine costs ~80 ms a figure.
OVER_RUNS = {"left": 0.1, "right": 0.98, "top": 0.9, "bottom": 0.3}


def _present(values: list[float | None]) -> tuple[list[int], list[float]]:
    """The runs that have a value, and those values."""
    kept = [(i, v) for i, v in enumerate(values) if v is not None]
    return [i for i, _ in kept], [v for _, v in kept]


def _series(axes: Axes, values: list[float | None], **style: object) -> None:
    xs, ys = _present(values)
    if xs:
        axes.plot(xs, ys, **style)  # type: ignore[arg-type]


def _alerts(axes: Axes, values: list[float | None], alerts: list[bool], label: str) -> None:
    xs, ys = _present([v if a else None for v, a in zip(values, alerts, strict=True)])
    if xs:
        axes.scatter(xs, ys, s=140, facecolors="none", edgecolors=ALERT, label=label)


def _runs_axis(axes: Axes, runs: list[str]) -> None:
    every = max(1, len(runs) // 8)
    ticks = [i for i in range(len(runs)) if i % every == 0 or i == len(runs) - 1]
    axes.set_xticks(ticks, [runs[i] for i in ticks], rotation=30, ha="right", fontsize=7)
    axes.set_xlim(-0.5, len(runs) - 0.5)
    axes.grid(alpha=0.3)


def performance_figure(history: History) -> Figure:
    from matplotlib.figure import Figure

    points = history.points
    figure = Figure(figsize=(7, 3.2), dpi=80)
    figure.subplots_adjust(**OVER_RUNS)
    axes = figure.add_subplot()
    band = [
        (i, p.threshold, p.reference)
        for i, p in enumerate(points)
        if p.threshold is not None and p.reference is not None
    ]
    if len(band) == 1:  # one run: the band across the plot
        axes.axhspan(band[0][1], band[0][2], color="#c8e6c9", label="reference to bound")
    elif band:
        axes.fill_between(
            [i for i, _, _ in band],
            [t for _, t, _ in band],
            [r for _, _, r in band],
            color="#c8e6c9",
            label="reference to bound",
        )
    metric = points[-1].metric
    _series(axes, [p.estimated for p in points], marker="o", color="#1565c0", label="estimated")
    _series(axes, [p.realized for p in points], marker="s", color="#212121", label="realized")
    alerted = [p.realized if p.realized is not None else p.estimated for p in points]
    _alerts(axes, alerted, [p.alert for p in points], "alert")
    _runs_axis(axes, [p.run for p in points])
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} over the last {len(points)} run(s)", fontsize=10)
    axes.legend(fontsize=7, loc="best")
    return figure


def coverage_figure(history: History) -> Figure:
    from matplotlib.figure import Figure

    points = history.points
    figure = Figure(figsize=(7, 3.2), dpi=80)
    figure.subplots_adjust(**OVER_RUNS)
    axes = figure.add_subplot()
    nominal = [p.coverage_nominal for p in points]
    realized = [p.coverage_realized for p in points]
    _series(axes, nominal, linestyle="--", color="#2e7d32", label="nominal")
    _series(axes, realized, marker="s", color="#212121", label="realized coverage")
    _alerts(axes, realized, [p.coverage_alert for p in points], "alert")
    _runs_axis(axes, [p.run for p in points])
    axes.set_ylabel("interval coverage")
    axes.set_title(f"interval coverage over the last {len(points)} run(s)", fontsize=10)
    axes.legend(fontsize=7, loc="best")
    return figure


def scores_figure(ranked: list[tuple[str, ColumnVerdict]]) -> Figure:
    from matplotlib.figure import Figure

    height = 0.9 + 0.25 * max(len(ranked), 1)
    figure = Figure(figsize=(7, height), dpi=80)
    figure.subplots_adjust(left=0.14, right=0.98, top=1 - 0.15 / height, bottom=0.55 / height)
    axes = figure.add_subplot()
    names = [name for name, _ in ranked][::-1]
    verdicts = [verdict for _, verdict in ranked][::-1]
    ys = list(range(len(names)))
    colours = [ALERT if v.detected else "#90a4ae" for v in verdicts]
    axes.barh(ys, [v.score for v in verdicts], color=colours)
    axes.scatter([v.threshold for v in verdicts], ys, marker="|", s=200, color="black")
    axes.set_yticks(ys, names, fontsize=7)
    axes.set_xlabel("drift score (bar) against threshold (tick); red: drifted")
    return figure


def write_plots(
    history: History, ranked: list[tuple[str, ColumnVerdict]], folder: Path
) -> list[Path]:
    """The PNG files in ``folder`` (coverage only for a regressor's intervals)."""
    figures = {DRIFT_PERFORMANCE_PLOT: performance_figure(history)}
    if history.has_coverage:
        figures[DRIFT_COVERAGE_PLOT] = coverage_figure(history)
    if ranked:
        figures[DRIFT_SCORES_PLOT] = scores_figure(ranked)
    written = []
    for name, figure in figures.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
        written.append(path)
    return written
