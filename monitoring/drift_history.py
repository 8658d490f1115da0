"""The performance metric over the last runs, read back from the run folders.

Each run folder (``<drift.reports>/<UTC start>``) holds its ``summary.json``; the newest
``drift.history_runs`` of them, this run included, become one :class:`Point` each. A
folder without a readable summary (a run that failed half way, a file someone broke) is
skipped and named in :attr:`History.notes`, never a failed run. The current run's point
comes from its :class:`Summary` in memory, so a first run plots itself alone.

:func:`performance_svg` and :func:`coverage_svg` draw them as inline SVG (no script, no
network): the reference and the alert threshold as a band, the label-free estimate, the
realized value where labels arrived, and each run whose verdict found a drop ringed red.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from monitoring.drift_summary import Summary
from pipeline.paths import DRIFT_SUMMARY_FILE

RUN_FOLDER = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")  # as ``folder.new_run_folder`` names them


@dataclass(frozen=True)
class Score:
    """One column's drift statistic in one run, against its threshold."""

    score: float
    threshold: float
    detected: bool

    @property
    def ratio(self) -> float | None:
        """The score in units of the threshold: above 1 is drift."""
        return self.score / self.threshold if self.threshold > 0 else None


@dataclass(frozen=True)
class Point:
    """One run's performance figures (``None`` where the run had none) and its columns'
    drift statistics."""

    run: str
    metric: str
    higher_is_better: bool
    reference: float | None
    threshold: float | None  # lower (higher is better) or upper threshold
    estimated: float | None
    realized: float | None
    alert: bool
    coverage_nominal: float | None = None
    coverage_realized: float | None = None
    coverage_alert: bool = False
    columns: dict[str, Score] = field(default_factory=dict)


@dataclass
class History:
    points: list[Point] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def has_coverage(self) -> bool:
        return any(p.coverage_nominal is not None for p in self.points)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is no number")
    return float(value)


def _scores(payload: dict[str, Any]) -> dict[str, Score]:
    """The feature columns' statistics of a summary; a run that judged none has none."""
    drift = payload.get("data_drift")
    columns = drift.get("columns") if isinstance(drift, dict) else None
    scores = {}
    for name, verdict in (columns or {}).items():
        score, threshold = _number(verdict.get("score")), _number(verdict.get("threshold"))
        if score is not None and threshold is not None:
            scores[str(name)] = Score(score, threshold, verdict.get("detected") is True)
    return scores


def point_of(run: str, payload: dict[str, Any]) -> Point:
    """The figures of one ``summary.json`` (a ``ValueError``/``KeyError`` if malformed)."""
    performance = payload.get("performance") if isinstance(payload, dict) else None
    if not isinstance(performance, dict):
        raise ValueError("no 'performance' object in it")
    higher = bool(performance.get("higher_is_better", True))
    threshold_key = "lower_threshold" if higher else "upper_threshold"
    coverage = performance.get("coverage") or {}
    return Point(
        run=run,
        metric=str(performance["metric"]),
        higher_is_better=higher,
        reference=_number(performance.get("reference")),
        threshold=_number(performance.get(threshold_key)),
        estimated=_number(performance.get("estimated")),
        realized=_number(performance.get("realized")),
        alert=performance.get("detected") is True,
        coverage_nominal=_number(coverage.get("nominal")),
        coverage_realized=_number(coverage.get("realized")),
        coverage_alert=coverage.get("detected") is True,
        columns=_scores(payload),
    )


def _order(name: str) -> tuple[str, int]:
    stamp, _, n = name.partition("-")
    return stamp, int(n or 1)


def read_history(reports: Path, current: Path, summary: Summary, runs: int) -> History:
    """The last ``runs`` runs in ``reports``, ending with ``current`` (this run's folder,
    its figures taken from ``summary``)."""
    history = History()
    earlier = sorted(
        (p for p in reports.iterdir() if p.is_dir() and RUN_FOLDER.match(p.name)),
        key=lambda p: _order(p.name),
    )
    earlier = [p for p in earlier if p.name != current.name][-(runs - 1) :] if runs > 1 else []
    for folder in earlier:
        try:
            payload = json.loads((folder / DRIFT_SUMMARY_FILE).read_text())
            history.points.append(point_of(folder.name, payload))
        except FileNotFoundError:
            history.notes.append(f"run {folder.name} skipped: it has no {DRIFT_SUMMARY_FILE}")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            reason = f"{type(error).__name__}: {error}"[:160]
            history.notes.append(f"run {folder.name} skipped: unreadable summary ({reason})")
    history.points.append(point_of(current.name, summary.model_dump(mode="json")))
    return history


# Plot geometry: a viewBox the page scales to its width (a phone's too).
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 640, 240, 58, 44, 14, 46
ESTIMATE, REALIZED, ALERT, BAND = "#1565c0", "#212121", "#c62828", "#c8e6c9"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


@dataclass(frozen=True)
class _Axes:
    runs: int
    low: float
    high: float

    def x(self, i: int) -> float:
        span = WIDTH - LEFT - RIGHT
        return LEFT + (span / 2 if self.runs == 1 else span * i / (self.runs - 1))

    def y(self, value: float) -> float:
        return TOP + (self.high - value) / (self.high - self.low) * (HEIGHT - TOP - BOTTOM)


def _axes(runs: int, values: list[float]) -> _Axes:
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or abs(high) * 0.05 or 0.05
    return _Axes(runs, low - pad, high + pad)


def _frame(axes: _Axes, runs: list[str]) -> str:
    """Y ticks at the bottom, middle and top; X labels as each run's day and time."""
    parts = []
    for value in (axes.low, (axes.low + axes.high) / 2, axes.high):
        y = axes.y(value)
        parts.append(
            f"<line x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{y:.1f}' y2='{y:.1f}' stroke='#eee'/>"
            f"<text x='{LEFT - 4}' y='{y + 4:.1f}' text-anchor='end' font-size='10'>"
            f"{value:.3f}</text>"
        )
    every = max(1, len(runs) // 6)
    for i, run in enumerate(runs):
        if i % every == 0 or i == len(runs) - 1:  # a run folder's UTC start, MM-DD HH:MM:SS
            label = f"{run[4:6]}-{run[6:8]} {run[9:11]}:{run[11:13]}:{run[13:15]}"
            parts.append(
                f"<text x='{axes.x(i):.1f}' y='{HEIGHT - BOTTOM + 14}' text-anchor='middle' "
                f"font-size='9'>{escape(label)}</text>"
            )
    return "".join(parts)


def _line(axes: _Axes, values: list[float | None], colour: str, name: str, dash: str) -> str:
    """A polyline through the runs that have a value, one marker per value."""
    placed = [(axes.x(i), axes.y(v), v) for i, v in enumerate(values) if v is not None]
    if not placed:
        return ""
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in placed)
    marks = "".join(
        f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3.5' fill='{colour}' data-series='{name}' "
        f"data-value='{v:.4f}'><title>{name} {v:.4f}</title></circle>"
        for x, y, v in placed
    )
    return (
        f"<polyline points='{path}' fill='none' stroke='{colour}' stroke-width='2' "
        f"stroke-dasharray='{dash}'/>{marks}"
    )


def _band(axes: _Axes, lows: list[float | None], highs: list[float | None]) -> str:
    """The shaded band between two series, over the runs that have both."""
    both = [
        (i, a, b)
        for i, (a, b) in enumerate(zip(lows, highs, strict=True))
        if a is not None and b is not None
    ]
    if not both:
        return ""
    if len(both) == 1:  # one run: a band across the plot
        both = [(-1, both[0][1], both[0][2]), (len(lows), both[0][1], both[0][2])]
    x = [LEFT if i < 0 else WIDTH - RIGHT if i >= len(lows) else axes.x(i) for i, _, _ in both]
    top = [f"{x[k]:.1f},{axes.y(max(a, b)):.1f}" for k, (_, a, b) in enumerate(both)]
    bottom = [f"{x[k]:.1f},{axes.y(min(a, b)):.1f}" for k, (_, a, b) in enumerate(both)]
    return f"<polygon points='{' '.join(top + bottom[::-1])}' fill='{BAND}' opacity='.7'/>"


def _alerts(axes: _Axes, values: list[float | None], alerts: list[bool], name: str) -> str:
    return "".join(
        f"<circle cx='{axes.x(i):.1f}' cy='{axes.y(v):.1f}' r='8' fill='none' stroke='{ALERT}'"
        f" stroke-width='2.5' data-alert='{name}'><title>alert: {name} {v:.4f}</title></circle>"
        for i, (v, alert) in enumerate(zip(values, alerts, strict=True))
        if alert and v is not None
    )


def _svg(element_id: str, label: str, body: str, legend: list[tuple[str, str]]) -> str:
    keys = "".join(
        f"<rect x='{LEFT + k * 150}' y='{HEIGHT - 18}' width='10' height='10' fill='{c}'/>"
        f"<text x='{LEFT + 14 + k * 150}' y='{HEIGHT - 9}' font-size='10'>{escape(t)}</text>"
        for k, (c, t) in enumerate(legend)
    )
    return (
        f"<svg id='{element_id}' viewBox='0 0 {WIDTH} {HEIGHT}' style='width:100%;"
        f"max-width:{WIDTH}px;height:auto' role='img' aria-label='{escape(label)}'>"
        f"{body}{keys}</svg>"
    )


def performance_svg(history: History) -> str:
    """The metric over the runs: band from the reference to the alert threshold, the
    estimate (blue), the realized value (black, where labels arrived), alerts ringed red."""
    points = history.points
    estimated = [p.estimated for p in points]
    realized = [p.realized for p in points]
    reference = [p.reference for p in points]
    threshold = [p.threshold for p in points]
    values = [v for v in estimated + realized + reference + threshold if v is not None]
    if not values:
        return "<p id='mlstack-history-empty'>No performance figures in these runs.</p>"
    axes = _axes(len(points), values)
    alerted = [p.realized if p.realized is not None else p.estimated for p in points]
    body = (
        _band(axes, threshold, reference)
        + _frame(axes, [p.run for p in points])
        + _line(axes, reference, "#2e7d32", "reference", "4 3")
        + _line(axes, estimated, ESTIMATE, "estimated", "")
        + _line(axes, realized, REALIZED, "realized", "")
        + _alerts(axes, alerted, [p.alert for p in points], "performance")
    )
    metric = points[-1].metric
    legend = [(BAND, f"reference to {'lower' if points[-1].higher_is_better else 'upper'} bound")]
    legend += [(ESTIMATE, f"estimated {metric}"), (REALIZED, f"realized {metric}")]
    legend += [(ALERT, "alert")]
    return _svg("mlstack-history", f"{metric} over the last {len(points)} runs", body, legend)


def coverage_svg(history: History) -> str:
    """A regressor's interval coverage over the runs against its nominal level."""
    points = history.points
    nominal = [p.coverage_nominal for p in points]
    realized = [p.coverage_realized for p in points]
    values = [v for v in nominal + realized if v is not None]
    if not values:
        return ""
    axes = _axes(len(points), values)
    body = (
        _frame(axes, [p.run for p in points])
        + _line(axes, nominal, "#2e7d32", "nominal", "4 3")
        + _line(axes, realized, REALIZED, "coverage", "")
        + _alerts(axes, realized, [p.coverage_alert for p in points], "coverage")
    )
    legend = [("#2e7d32", "nominal coverage"), (REALIZED, "realized coverage"), (ALERT, "alert")]
    return _svg("mlstack-coverage", f"interval coverage over {len(points)} runs", body, legend)


# The columns the statistics plot follows: those nearest their threshold in this run.
SHOWN_COLUMNS = 3
COLUMN_COLOURS = ("#6a1b9a", "#ef6c00", "#00838f")


def statistics_svg(history: History) -> str:
    """NannyML's chunk plot on one scale: each shown column's drift statistic over the
    runs in units of that run's threshold, the band below 1 (no drift) shaded, the runs
    where the column drifted ringed red. A calibrated threshold moves with the window's
    size; dividing by it keeps runs of different sizes comparable."""
    points = history.points
    latest = points[-1].columns
    ranked = sorted(
        (c for c in latest if latest[c].ratio is not None),
        key=lambda c: -(latest[c].ratio or 0.0),
    )[:SHOWN_COLUMNS]
    if not ranked:
        return ""
    series = {c: [p.columns[c].ratio if c in p.columns else None for p in points] for c in ranked}
    values = [v for line in series.values() for v in line if v is not None] + [0.0, 1.0]
    axes = _axes(len(points), values)
    body = _band(axes, [0.0] * len(points), [1.0] * len(points)) + _frame(
        axes, [p.run for p in points]
    )
    legend = [(BAND, "below its threshold")]
    for colour, column in zip(COLUMN_COLOURS, ranked, strict=False):
        detected = [column in p.columns and p.columns[column].detected for p in points]
        body += _line(axes, series[column], colour, column, "")
        body += _alerts(axes, series[column], detected, column)
        legend.append((colour, column))
    label = f"drift statistics over their thresholds, {len(points)} runs"
    return _svg("mlstack-statistics", label, body, legend)


def section(history: History) -> str:
    """The history block of the page: the plots, the latest figures in words, the notes."""
    latest = history.points[-1]
    words = (
        f"this run: estimated {latest.metric} {_fmt(latest.estimated)}, realized "
        f"{_fmt(latest.realized)}, reference {_fmt(latest.reference)}, bound "
        f"{_fmt(latest.threshold)}"
    )
    if latest.coverage_nominal is not None:
        words += f"; coverage {_fmt(latest.coverage_realized)}, nominal {latest.coverage_nominal}"
    notes = "".join(f"<li>{escape(note)}</li>" for note in history.notes)
    return (
        f"<h3>{escape(latest.metric)} over the last {len(history.points)} run(s)</h3>"
        f"{performance_svg(history)}"
        + (f"<h3>Interval coverage</h3>{coverage_svg(history)}" if history.has_coverage else "")
        + f"<p id='mlstack-history-latest'>{escape(words)}</p>"
        + (
            "<h3>Drift statistics over their thresholds</h3>"
            "<p>The three columns nearest their threshold in this run; above 1 is drift.</p>"
            f"{statistics_svg(history)}"
            if history.points[-1].columns
            else ""
        )
        + (f"<ul id='mlstack-history-notes'>{notes}</ul>" if notes else "")
    )
