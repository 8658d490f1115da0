"""The verdicts as a short HTML section placed at the top of Evidently's ``report.html``.

Evidently's report shows the per-column distributions; this section says, one sentence a
verdict, what the job concluded and why, and lists each feature's importance, drift score
and missing-value share, since Evidently knows neither the importance nor our verdicts.
"""

from __future__ import annotations

from html import escape

from monitoring.drift_summary import Performance, Section, Summary

EXPLAIN: dict[Section, str] = {
    Section.DATA_DRIFT: (
        "Data drift: the features that drifted carry at least drift.drift_share of the "
        "champion's permutation importance, so a shift in the feature the model relies on "
        "counts even when it is one column of many."
    ),
    Section.PREDICTION_DRIFT: (
        "Prediction drift: the distribution of the model's probabilities or predicted "
        "labels moved away from the reference's."
    ),
    Section.PERFORMANCE: (
        "Performance drop: the metric, estimated from the model's calibrated probabilities "
        "before labels arrive (CBPE) and measured once they do, fell below the lower "
        "threshold (mean minus drift.performance_sigmas standard deviations over reference "
        "chunks of this window's size) and, with labels, significantly (drift.alpha)."
    ),
    Section.CONCEPT_DRIFT: (
        "Concept drift: with labels, the model does significantly and materially worse "
        "than its own estimate on the same rows, which a shift of the inputs alone does "
        "not cause: the relation between inputs and label changed."
    ),
    Section.LABEL_DRIFT: "Label drift: the distribution of the labels moved.",
    Section.DATA_QUALITY: (
        "Missing values: a feature is missing in more rows than in the reference by over "
        "drift.max_missing_increase (an empty column is an upstream break, not drift)."
    ),
}


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _verdict(detected: bool | None) -> str:
    return {True: "<b>detected</b>", False: "not detected", None: "not judged"}[detected]


def _coverage(performance: Performance) -> str:
    covered = performance.coverage
    if covered is None or covered.realized is None:
        return ""
    return (
        f"; interval coverage {_number(covered.realized)} (nominal {covered.nominal}, "
        f"below it: {'yes' if covered.detected else 'no'})"
    )


def section(summary: Summary) -> str:
    """The verdicts, their one-sentence explanations and the per-column table."""
    items = "".join(
        f"<li>{_verdict(detected)}. {escape(EXPLAIN[section])}</li>"
        for section, detected in summary.verdicts().items()
    )
    performance = summary.performance
    figures = (
        f"<p>{escape(performance.metric)}: reference {_number(performance.reference)}, "
        f"estimated {_number(performance.estimated)}, realized "
        f"{_number(performance.realized) or 'n/a (no labels)'}, "
        + (
            f"lower threshold {_number(performance.lower_threshold)}"
            if performance.higher_is_better
            else f"upper threshold {_number(performance.upper_threshold)}"
        )
        + _coverage(performance)
        + ". Drifted columns: share "
        f"{_number(summary.data_drift.share)}, importance-weighted "
        f"{_number(summary.data_drift.weighted_share)} (threshold "
        f"{summary.data_drift.drift_share}).</p>"
    )
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{_number(v.importance)}</td>"
        f"<td>{escape(v.method)}</td><td>{_number(v.score)}</td><td>{v.threshold}</td>"
        f"<td>{'yes' if v.detected else 'no'}</td><td>{_number(v.missing_share)}</td></tr>"
        for name, v in sorted(
            summary.data_drift.columns.items(), key=lambda item: -(item[1].importance or 0)
        )
    )
    table = (
        "<table border='1' cellpadding='4' style='border-collapse:collapse'><tr>"
        "<th>feature</th><th>importance</th><th>method</th><th>score</th><th>threshold</th>"
        "<th>drifted</th><th>missing share</th></tr>" + rows + "</table>"
    )
    return (
        "<section id='mlstack-verdicts' style='font-family:sans-serif;margin:1em'>"
        f"<h2>mlstack verdicts</h2><ul>{items}</ul>{figures}{table}</section>"
    )


def add_section(html: str, summary: Summary) -> str:
    """Evidently's page with the verdicts section first in its body."""
    block = section(summary)
    index = html.find("<body")
    if index < 0:
        return block + html
    end = html.index(">", index) + 1
    return html[:end] + block + html[end:]
