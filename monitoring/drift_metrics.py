"""The drift job's verdicts as Prometheus series: pushed to a Pushgateway or written as a file.

The job is a batch job, so Prometheus cannot scrape it: it pushes to a Pushgateway (which
Prometheus scrapes with ``honor_labels``) or writes node_exporter's textfile format. Each
run builds a fresh registry and replaces the previous push as a whole, so a column or a
model version that is gone does not linger as a stale series. Kinds and columns without a
verdict (too few rows or labels) are left out rather than reported as "no drift".
"""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from monitoring.drift_summary import Summary

JOB = "mlstack_drift"
MODEL_LABELS = ("model_name", "model_version")
DETECTED = "mlstack_drift_detected"
SHARE = "mlstack_drift_share"
COLUMN_SCORE = "mlstack_drift_column_score"
COLUMN_DETECTED = "mlstack_drift_column_detected"
PERFORMANCE = "mlstack_performance"
ROWS = "mlstack_drift_rows"
LAST_SUCCESS = "mlstack_drift_last_success_timestamp_seconds"
# Every series a run exports: the alert rules, the dashboard and the tests use these names.
SERIES = (DETECTED, SHARE, COLUMN_SCORE, COLUMN_DETECTED, PERFORMANCE, ROWS, LAST_SUCCESS)


def registry_for(summary: Summary, finished: float | None = None) -> CollectorRegistry:
    """Every series of one run in a registry of its own."""
    registry = CollectorRegistry()
    model = {"model_name": summary.model.name, "model_version": summary.model.version}

    def gauge(name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(name, documentation, [*labels, *MODEL_LABELS], registry=registry)

    detected = gauge(DETECTED, "1 when drift of this kind was detected.", "kind")
    share = gauge(SHARE, "Share of feature columns whose distribution drifted.")
    score = gauge(COLUMN_SCORE, "Drift score of a column (method dependent).", "column")
    column_detected = gauge(COLUMN_DETECTED, "1 when a column drifted.", "column")
    performance = gauge(PERFORMANCE, "Model performance on labeled rows.", "metric", "window")
    rows = gauge(ROWS, "Rows compared, by kind.", "kind")
    success = gauge(LAST_SUCCESS, "When the drift job last completed.")

    verdicts = {
        "data": summary.data_drift.detected,
        "prediction": summary.prediction_drift.detected,
        "label": summary.label_drift.detected,
        "concept": summary.concept_drift.detected,
    }
    for kind, value in verdicts.items():
        if value is not None:
            detected.labels(kind=kind, **model).set(int(value))
    if summary.data_drift.share is not None:
        share.labels(**model).set(summary.data_drift.share)
    columns = {**summary.data_drift.columns, **summary.prediction_drift.columns}
    for column, verdict in columns.items():
        score.labels(column=column, **model).set(verdict.score)
        column_detected.labels(column=column, **model).set(int(verdict.detected))
    concept = summary.concept_drift
    for window, measured in (("reference", concept.reference), ("current", concept.current)):
        if measured is not None:
            performance.labels(metric=concept.metric, window=window, **model).set(measured)
    for kind, count in summary.rows.model_dump().items():
        rows.labels(kind=kind, **model).set(count)
    success.labels(**model).set(time.time() if finished is None else finished)
    return registry


def push(summary: Summary, gateway: str, finished: float | None = None) -> None:
    """Replace the job's group on the Pushgateway with this run's series."""
    push_to_gateway(gateway, job=JOB, registry=registry_for(summary, finished), timeout=10)


def write_textfile(summary: Summary, path: Path, finished: float | None = None) -> None:
    """node_exporter textfile format; written to a temporary file then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry_for(summary, finished))
