"""The run's verdicts elsewhere: a run in MLflow's ``monitoring`` experiment, the snapshots
in the Evidently workspace, the series on a Pushgateway or in a textfile.

MLflow and Evidently are imported inside the two functions that use them: they take 2 s
and 5 s to import on 2 cores, and ``mlstack drift run --no-mlflow --no-workspace`` (the
tests, the Prometheus-only schedule) does not need them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitoring.drift_metrics import push, write_textfile
from monitoring.drift_summary import Section, Summary
from pipeline import environment
from pipeline.settings import Settings
from pipeline.tracking import MONITORING_EXPERIMENT, experiment_id

if TYPE_CHECKING:
    from mlflow import MlflowClient

PERFORMANCE_FIGURES = ("reference", "estimated", "realized", "lower_threshold", "upper_threshold")
CONCEPT_FIGURES = ("reference", "current", "drop", "gap", "p_value")
MULTIVARIATE_FIGURES = ("score", "threshold", "band_mean", "band_std", "p_value")


def _row_metrics(summary: Summary) -> dict[str, float]:
    return {
        "rows_reference": summary.rows.reference,
        "rows_current": summary.rows.current,
        "rows_labeled": summary.rows.labeled,
        "rows_sampled": summary.sample.sample_rows,
        "rows_labeled_sampled": summary.sample.labeled_sample_rows,
    }


def _verdict_metrics(summary: Summary) -> dict[str, float]:
    """``<section>_detected`` for each judged section, the drift shares and scores."""
    metrics = {
        f"{section.value}_detected": float(detected)
        for section, detected in summary.verdicts().items()
        if detected is not None
    }
    data = summary.data_drift
    if data.share is not None:
        metrics["data_drift_share"] = data.share
    if data.weighted_share is not None:
        metrics["data_drift_weighted_share"] = data.weighted_share
    for column, verdict in data.columns.items():
        metrics[f"drift_score_{column}"] = verdict.score
    if summary.prediction_drift.score is not None:
        metrics["prediction_drift_score"] = summary.prediction_drift.score
    multivariate = summary.multivariate
    for name in MULTIVARIATE_FIGURES:
        value = getattr(multivariate, name)
        if value is not None:  # multivariate_score is the domain classifier's AUC
            metrics[f"{Section.MULTIVARIATE_DRIFT.value}_{name}"] = value
    return metrics


def _performance_metrics(summary: Summary) -> dict[str, float]:
    """The performance and concept-drift figures, named by the metric (``roc_auc_gap``)."""
    metrics = {}
    performance, concept = summary.performance, summary.concept_drift
    for name in PERFORMANCE_FIGURES:
        value = getattr(performance, name)
        if value is not None:
            metrics[f"{Section.PERFORMANCE.value}_{performance.metric}_{name}"] = value
    if performance.coverage is not None:
        for name in ("nominal", "realized", "p_value"):
            value = getattr(performance.coverage, name)
            if value is not None:
                metrics[f"{Section.PERFORMANCE.value}_coverage_{name}"] = value
        if performance.coverage.detected is not None:
            metrics["coverage_detected"] = float(performance.coverage.detected)
    for name in CONCEPT_FIGURES:
        value = getattr(concept, name)
        if value is not None:
            metrics[f"{concept.metric}_{name}"] = value
    return metrics


def mlflow_metrics(summary: Summary) -> dict[str, float]:
    """Every number a run logs to MLflow."""
    return {
        **_row_metrics(summary),
        **_verdict_metrics(summary),
        **_performance_metrics(summary),
    }


def _param(value: Any) -> str:
    """A window's value as an MLflow parameter; a list (the skipped files, any number of
    them, named in the run's ``summary.json``) by its length, within MLflow's limit."""
    return str(len(value)) if isinstance(value, list) else str(value)


def log_to_mlflow(
    registry: MlflowClient,
    settings: Settings,
    summary: Summary,
    folder: Path,
    window: dict[str, Any],
    before_artifacts: Callable[[str], None] | None = None,
) -> str:
    """A run in the ``monitoring`` experiment: verdicts as metrics, the folder as artifacts
    (``before_artifacts`` is called with the new run's id first: the page names its run).

    Logged through the settings' client (:func:`pipeline.tracking.client`, which refuses a
    missing embedded store instead of creating one), not MLflow's process-wide state.
    """
    from mlflow.entities import Metric, Param, RunStatus  # see the module's docstring

    tags = {
        "model_name": summary.model.name,
        "model_version": summary.model.version,
        "status": summary.status,
        "mlstack.stage": "drift",
    }
    run = registry.create_run(
        experiment_id(registry, settings, MONITORING_EXPERIMENT),
        run_name=f"drift-{folder.name}",
        tags=tags,
    )
    run_id = str(run.info.run_id)
    now = int(time.time() * 1000)
    try:
        registry.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in mlflow_metrics(summary).items()],
            params=[Param(f"window_{k}", _param(v)) for k, v in window.items()],
        )
        if before_artifacts is not None:
            before_artifacts(run_id)
        registry.log_artifacts(run_id, str(folder), artifact_path="drift")
    except Exception:
        registry.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    registry.set_terminated(run_id)
    return run_id


def _new_project(workspace: Any, name: str) -> Any:
    """The workspace project, with a dashboard of the verdicts over time."""
    from evidently.sdk.models import PanelMetric  # see the module's docstring
    from evidently.sdk.panels import line_plot_panel

    project = workspace.create_project(
        name, description="mlstack drift runs: one snapshot per run and kind"
    )
    panels = [
        ("Share of drifted features", "DriftedColumnsCount", {"value_type": "share"}),
        ("ROC AUC on labeled rows", "RocAuc", {}),
        ("Accuracy on labeled rows", "Accuracy", {}),
    ]
    for title, metric, labels in panels:
        value = PanelMetric(legend=title, metric=metric, metric_labels=labels)
        project.dashboard.add_panel(line_plot_panel(title=title, values=[value], size="half"))
    return project


def workspace_location(settings: Settings) -> str:
    """``drift.workspace`` as a URL (``s3://bucket/prefix``) or an absolute local path."""
    raw = settings.drift.workspace
    return raw if "://" in raw else str(settings.path(raw))


def add_to_workspace(settings: Settings, summary: Summary, folder: Path) -> None:
    """The snapshots into the Evidently workspace, so ``evidently ui`` shows history.

    Evidently reaches the workspace through fsspec, so ``s3://`` works with s3fs
    installed (the ``s3`` extra), endpoint and credentials from the environment.
    """
    from evidently.ui.workspace import Workspace  # see the module's docstring

    workspace = Workspace.create(workspace_location(settings))
    found = workspace.search_project(settings.drift.project)
    project = found[0] if found else _new_project(workspace, settings.drift.project)
    for kind, snapshot in summary.snapshots.items():
        name = f"{kind} {folder.name} (model {summary.model.version})"
        workspace.add_run(project.id, snapshot, name=name)


def export_metrics(
    summary: Summary,
    pushgateway: str | None,
    textfile: Path | None,
    finished: float,
    skipped_files: int = 0,
) -> None:
    """The series to the Pushgateway (``pushgateway`` or the environment's) and/or a file;
    ``skipped_files`` counts the capture files the window's read quarantined."""
    gateway = pushgateway or os.environ.get(environment.PUSHGATEWAY_URL)
    if gateway:
        try:
            push(summary, gateway, finished, skipped_files)
        except OSError as error:
            # The run's files are written; failing keeps the window for the next run and
            # lets the stale-job alert speak for a Pushgateway that stays away.
            raise RuntimeError(
                f"could not push to the Pushgateway at {gateway}: {error}"
            ) from error
    if textfile is not None:
        write_textfile(summary, textfile, finished, skipped_files)
