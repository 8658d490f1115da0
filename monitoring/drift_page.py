"""The operator's page: mlstack's header placed at the top of Evidently's ``report.html``.

It opens with one status (OK / WATCH / ACT, :attr:`Summary.operator_status`), the window,
the model and the reference, then one line per verdict with the figure that decided it,
the performance metric over the last runs (:mod:`monitoring.drift_history`), an inline
SVG of each feature's drift score against its threshold (no script, no network) and one of
the domain classifier's AUC against its band, a pointer to the drifted features'
distributions and the per-column table. Evidently's
report follows, labelled as per-column detail: its "Dataset Drift" line counts the
unweighted share of drifted columns by its own rule, which mlstack does not use, so the
page says so instead of showing two verdicts silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

from monitoring import drift_history
from monitoring.drift_history import History
from monitoring.drift_summary import ColumnVerdict, MultivariateDrift, Section, Summary

STATUS_COLOUR = {"ok": "#2e7d32", "watch": "#ef6c00", "act": "#c62828"}
STATUS_MEANING = {
    "ok": "no verdict found drift",
    "watch": "drift found in the inputs (a column or several together), predictions, "
    "labels or missing values; the "
    "model's performance holds",
    "act": "performance drop or concept drift found: a retrain on performance or concept "
    "drift would be triggered",
}

EVIDENTLY_NOTE = (
    "<section id='mlstack-evidently-note' style='font-family:sans-serif;margin:1em;"
    "padding:.5em;border-left:4px solid #888;background:#f4f4f4'>"
    "<b>Below: Evidently's per-column detail.</b> Its own &quot;Dataset Drift&quot; line "
    "counts the unweighted share of drifted columns against Evidently's threshold; mlstack "
    "does not use it. mlstack's data drift verdict weights each drifted column by the "
    "champion's permutation importance (see the status above).</section>"
)

STYLE = "font-family:sans-serif;margin:1em;max-width:980px;overflow-wrap:anywhere"
RUN_ID_SLOT = "<span id='mlstack-run-id'>not logged to MLflow</span>"


@dataclass(frozen=True)
class PageContext:
    """What the page names beside the summary: the window described by the job, the
    run's start, the reference set's path and the model that re-scored it."""

    window: dict[str, Any] = field(default_factory=dict)
    started: str | None = None
    reference: str | None = None
    reference_scored_by: dict[str, Any] | None = None
    history: History | None = None  # the last runs' performance, this one included


def fill_run_id(html: str, run_id: str) -> str:
    """The MLflow monitoring run's id in the page, once the run is logged."""
    return html.replace(RUN_ID_SLOT, f"<span id='mlstack-run-id'>{escape(run_id)}</span>", 1)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _p_value(value: float | None) -> str:
    """A p-value in three significant digits: the tail a calibrated threshold is cut from
    goes far below what four decimals show."""
    return "n/a" if value is None else f"{value:.3g}"


STATE = {True: "found", False: "not found", None: "not judged"}


def _state(detected: bool | None) -> str:
    return f"<b>{STATE[detected]}</b>" if detected else STATE[detected]


def _figures(summary: Summary) -> dict[Section, str]:
    """The figure that decided each verdict, or why it was not judged."""
    drift, perf, concept = summary.data_drift, summary.performance, summary.concept_drift
    if perf.higher_is_better:
        bound = f"lower bound {_number(perf.lower_threshold)}"
    else:
        bound = f"upper bound {_number(perf.upper_threshold)}"
    performance = f"estimated {perf.metric} {_number(perf.estimated)}, {bound}; realized " + (
        _number(perf.realized)
        if perf.realized is not None
        else f"not yet ({perf.labeled_rows} of {perf.min_labeled_rows} labels needed)"
    )
    covered = perf.coverage
    if covered is not None:
        performance += f"; interval coverage {_number(covered.realized)}, nominal {covered.nominal}"
    if concept.detected is None:
        concept_line = f"{concept.labeled_rows} labeled rows, {concept.min_labeled_rows} needed"
    else:
        concept_line = (
            f"realized {_number(concept.current)} vs estimated {_number(concept.estimated)}: "
            f"gap {_number(concept.gap)}, band {_number(concept.gap_threshold)}, "
            f"p {_number(concept.p_value)}"
        )
    label = summary.label_drift
    return {
        Section.MULTIVARIATE_DRIFT: _multivariate_line(summary),
        Section.DATA_DRIFT: (
            f"importance-weighted share {_number(drift.weighted_share)} of drifted columns, "
            f"threshold {drift.drift_share} (unweighted share {_number(drift.share)})"
        ),
        Section.PREDICTION_DRIFT: (
            f"{summary.prediction_drift.method or 'n/a'} score "
            f"{_number(summary.prediction_drift.score)}"
        ),
        Section.PERFORMANCE: performance,
        Section.CONCEPT_DRIFT: concept_line,
        Section.LABEL_DRIFT: (
            "no labels"
            if label.detected is None
            else f"{label.method} score {_number(label.score)}"
        ),
        Section.DATA_QUALITY: (
            "missing-value increase over "
            f"{summary.data_quality.max_missing_increase} in "
            + (
                ", ".join(c for c, v in summary.data_quality.columns.items() if v.detected)
                or "no column"
            )
        ),
    }


def _multivariate_line(summary: Summary) -> str:
    """The domain classifier's AUC against its band, or why it was not judged."""
    judged = summary.multivariate
    if judged.detected is None:
        return judged.note or "not run (too few rows, or drift.multivariate.enabled is false)"
    return (
        f"{judged.method} ROC AUC {_number(judged.score)}, threshold {_number(judged.threshold)} "
        f"(band of {len(judged.band)} reference stretches of {judged.band_rows} rows: mean "
        f"{_number(judged.band_mean)} + {judged.sigmas} × sd {_number(judged.band_std)}), "
        f"p {_number(judged.p_value)}, {judged.rows} rows a side"
    )


def _header(summary: Summary, context: PageContext) -> str:
    """Status, window, model, reference and run time, then one line per verdict."""
    status = summary.operator_status or "not judged"
    colour = STATUS_COLOUR.get(status, "#555")
    meaning = STATUS_MEANING.get(status, "too few rows for a verdict")
    window = context.window
    rows = summary.rows
    share = rows.labeled / rows.current if rows.current else 0.0
    scored_by = context.reference_scored_by or {}
    reference = f"{escape(context.reference or 'the reference set')} ({rows.reference} rows)" + (
        f", re-scored by version {escape(str(scored_by.get('version')))}" if scored_by else ""
    )
    if "until" in window:
        span = f"window {window.get('since') or 'start'} to {window['until']}"
    else:  # ``--current FILE``: the file is the window
        span = f"window: the file {window.get('source', 'n/a')}"
    facts = {
        "window": f"{escape(span)}: {rows.current} rows, {rows.labeled} labeled ({share:.0%})",
        "model": f"model {escape(summary.model.name)} version {escape(summary.model.version)}"
        + (
            f", training run {escape(summary.model.run_id)}"
            if summary.model.run_id
            else ", training run not known"
        ),
        "reference": f"judged against {reference}",
        "run": f"run started {escape(context.started or 'n/a')}, MLflow monitoring run "
        f"{RUN_ID_SLOT}",
    }
    figures = _figures(summary)
    lines = "".join(
        f"<li data-verdict='{section.value}' data-state='{STATE[detected]}'>"
        f"{section.value.replace('_', ' ')}: "
        f"{_state(detected)} — {escape(figures[section])}</li>"
        for section, detected in summary.verdicts().items()
    )
    return (
        f"<div id='mlstack-status' data-status='{status}' style='font-size:2em;"
        f"font-weight:bold;color:#fff;background:{colour};padding:.3em .6em'>"
        f"{status.upper()}</div><p>{escape(meaning)}</p>"
        f"<ul>{''.join(f'<li id=mlstack-{k}>{fact}</li>' for k, fact in facts.items())}</ul>"
        f"<h3>Verdicts</h3><ul>{lines}</ul>"
    )


def ranked(columns: dict[str, ColumnVerdict]) -> list[tuple[str, ColumnVerdict]]:
    """Columns by importance × score, the ones most worth a look first."""
    return sorted(columns.items(), key=lambda item: -((item[1].importance or 0) * item[1].score))


def scores_svg(columns: dict[str, ColumnVerdict]) -> str:
    """Each feature's drift score (bar) against its threshold (tick), drifted bars red."""
    by_rank = ranked(columns)
    top = max([v.score for _, v in by_rank] + [v.threshold for _, v in by_rank] + [1e-9])
    width, label, bar_height = 560, 140, 18
    scale = (width - label - 60) / top
    parts = []
    for i, (name, verdict) in enumerate(by_rank):
        y = 2 + i * (bar_height + 4)
        fill = "#c62828" if verdict.detected else "#90a4ae"
        tick = label + verdict.threshold * scale
        parts.append(
            f"<text x='{label - 4}' y='{y + 13}' text-anchor='end' font-size='11'>"
            f"{escape(name)}</text><rect x='{label}' y='{y}' width='{verdict.score * scale:.1f}'"
            f" height='{bar_height}' fill='{fill}'><title>{escape(name)}: score "
            f"{verdict.score:.4f}, threshold {verdict.threshold:.4f}</title></rect>"
            f"<line x1='{tick:.1f}' x2='{tick:.1f}' y1='{y - 1}' y2='{y + bar_height + 1}' "
            f"stroke='#000' stroke-width='2'/><text x='{label + verdict.score * scale + 4:.1f}' "
            f"y='{y + 13}' font-size='10'>{verdict.score:.3f}</text>"
        )
    height = 4 + max(len(by_rank) * (bar_height + 4), bar_height)
    return (
        f"<svg id='mlstack-drift-scores' viewBox='0 0 {width} {height}' style='width:100%;"
        f"max-width:{width}px;height:auto' role='img' aria-label='drift score per feature "
        f"against its threshold'>{''.join(parts)}</svg>"
    )


def multivariate_svg(judged: MultivariateDrift) -> str:
    """The domain classifier's AUC on the window (a bar, red when drifted) against the
    AUCs of the reference stretches (dots: the band) and the threshold (tick); empty when
    it was not judged."""
    if judged.score is None or judged.threshold is None:
        return ""
    values = [*judged.band, judged.score, judged.threshold]
    low, high = min(0.45, *values), min(1.0, max(values) + 0.02)
    width, left, right = 560, 40, 20

    def x(value: float) -> float:
        return left + (value - low) / (high - low) * (width - left - right)

    dots = "".join(
        f"<circle cx='{x(a):.1f}' cy='14' r='3' fill='#90a4ae'><title>reference stretch: "
        f"AUC {a:.4f}</title></circle>"
        for a in judged.band
    )
    fill = "#c62828" if judged.detected else "#1565c0"
    return (
        f"<svg id='mlstack-multivariate' viewBox='0 0 {width} 52' style='width:100%;"
        f"max-width:{width}px;height:auto' role='img' aria-label='domain classifier AUC "
        f"against its band'>{dots}"
        f"<rect x='{x(judged.score) - 2:.1f}' y='24' width='4' height='14' fill='{fill}'>"
        f"<title>window: AUC {judged.score:.4f}</title></rect>"
        f"<line x1='{x(judged.threshold):.1f}' x2='{x(judged.threshold):.1f}' y1='4' y2='40' "
        f"stroke='#000' stroke-width='2'><title>threshold {judged.threshold:.4f}</title></line>"
        f"<text x='{left}' y='50' font-size='10'>{low:.2f}</text>"
        f"<text x='{width - right}' y='50' font-size='10' text-anchor='end'>{high:.2f}</text>"
        f"<text x='{x(judged.score) + 4:.1f}' y='36' font-size='10'>{judged.score:.3f}</text>"
        "</svg>"
    )


def _multivariate_figure(summary: Summary) -> str:
    figure = multivariate_svg(summary.multivariate)
    if not figure:
        return ""
    return (
        "<h3>Domain classifier: the window's ROC AUC (bar; red: drifted) against reference "
        f"stretches of its size (dots) and the threshold (tick)</h3>{figure}"
    )


def _table(summary: Summary) -> str:
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{_number(v.importance)}</td>"
        f"<td>{escape(v.method)}</td><td>{_number(v.score)}</td><td>{_number(v.threshold)}</td>"
        f"<td>{'calibrated' if v.calibrated else 'fixed'}</td><td>{_p_value(v.p_value)}</td>"
        f"<td>{'yes' if v.detected else 'no'}</td><td>{_number(v.missing_share)}</td></tr>"
        for name, v in ranked(summary.data_drift.columns)
    )
    return (
        "<table id='mlstack-columns' border='1' cellpadding='4' "
        "style='border-collapse:collapse'><tr><th>feature</th><th>importance</th>"
        "<th>method</th><th>score</th><th>threshold</th><th>threshold from</th>"
        "<th>p-value</th><th>drifted</th><th>missing share</th></tr>" + rows + "</table>"
    )


def _distributions(summary: Summary) -> str:
    """Where the drifted features' reference and current distributions are drawn: in
    Evidently's per-column detail below (its widgets have no stable anchor of their own)."""
    drifted = [name for name, v in ranked(summary.data_drift.columns) if v.detected]
    if not drifted:
        return ""
    return (
        "<p id='mlstack-distributions'>Reference against current distributions of the "
        f"drifted features ({escape(', '.join(drifted))}, most important first): in "
        "Evidently's per-column detail <a href='#mlstack-evidently-note'>below</a>.</p>"
    )


def section(summary: Summary, context: PageContext | None = None) -> str:
    """mlstack's header: status, window, model, verdict lines, the performance history,
    the scores plot and the table."""
    context = context or PageContext()
    history = drift_history.section(context.history) if context.history else ""
    return (
        f"<section id='mlstack-verdicts' style='{STYLE}'>{_header(summary, context)}{history}"
        "<h3>Drift score per feature (bar) against its threshold (tick), by importance × "
        f"score; red: drifted</h3>{scores_svg(summary.data_drift.columns)}"
        f"{_multivariate_figure(summary)}"
        f"{_distributions(summary)}"
        f"<div style='overflow-x:auto'>{_table(summary)}</div></section>{EVIDENTLY_NOTE}"
    )


def insufficient_page(summary: Summary, context: PageContext, needed: int) -> str:
    """A window too small to judge: no Evidently report, the status "not judged", why,
    and the history so far."""
    history = drift_history.section(context.history) if context.history else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' "
        "content='width=device-width, initial-scale=1'><title>mlstack drift</title></head>"
        f"<body><section id='mlstack-verdicts' style='{STYLE}'>{_header(summary, context)}"
        f"<h1>Insufficient data</h1><p>{summary.rows.current} current row(s), fewer than the "
        f"{needed} needed for a verdict (<code>drift.min_rows</code>). No drift was judged."
        f"</p>{history}</section></body></html>\n"
    )


def add_section(html: str, summary: Summary, context: PageContext | None = None) -> str:
    """Evidently's page with mlstack's header first in its body."""
    block = section(summary, context)
    index = html.find("<body")
    if index < 0:
        return block + html
    end = html.index(">", index) + 1
    return html[:end] + block + html[end:]
