"""One run of the drift job, in order: refuse what cannot work, read, compare, write.

A run first refuses bad settings and a missing MLflow store (before writing anything),
then writes, in order: the run folder (``report.html`` with the last runs' history,
``summary.json``), the plots as PNG files and the MLflow run,
the Evidently workspace snapshot, the Prometheus series, and last ``latest.json`` and the
state file. A run that fails half way leaves both where they were: ``latest.json`` points
at the newest complete run, and the next run retries the same window (see
:func:`advances_state`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitoring.drift import compare
from monitoring.drift_history import read_history
from monitoring.drift_job.exports import add_to_workspace, export_metrics, log_to_mlflow
from monitoring.drift_job.folder import (
    add_run_id,
    calibration_folder,
    new_run_folder,
    reports_folder,
    write_latest,
    write_run_folder,
    write_state,
    write_summary,
)
from monitoring.drift_job.inputs import (
    check_settings,
    importance_path,
    load_current,
    read_importance,
    read_inputs,
    read_reference,
    reference_path,
    utc_now,
)
from monitoring.drift_job.options import JobOptions
from monitoring.drift_job.rescore import reference_for, served_by
from monitoring.drift_page import ranked
from monitoring.drift_plots import write_plots
from monitoring.drift_summary import ModelInfo, Summary
from pipeline.settings import Settings
from pipeline.tracking import client


@dataclass
class JobResult:
    summary: Summary
    folder: Path
    window: dict[str, Any] = field(default_factory=dict)
    reference_scored_by: dict[str, Any] | None = None  # see :func:`rescore.reference_for`


def advances_state(options: JobOptions, summary: Summary) -> bool:
    """Only a judged default window moves the state on.

    A file or an explicit window is an ad-hoc look and leaves the schedule's place alone;
    a window too small to judge is kept, so rows pile up until there are enough.
    """
    default_window = options.current is None and options.since is None and options.until is None
    return default_window and summary.status == "ok"


def training_run(registry: Any, model: ModelInfo) -> str | None:
    """The run that trained ``model``'s version, from the registry; ``None`` when the
    version is unknown or not (any longer) registered: the header then says so."""
    if model.version == "unknown":
        return None
    try:
        return str(registry.get_model_version(model.name, model.version).run_id) or None
    except Exception:  # an unregistered or deleted version: the verdicts do not need it
        return None


def run_once(settings: Settings, options: JobOptions) -> JobResult:
    """Compare one window and write every output; the state moves on only on success."""
    check_settings(settings)
    started = utc_now()
    registry = client(settings) if options.mlflow else None  # no store: refused, nothing written
    reference = read_reference(settings, options)
    importance = read_importance(importance_path(settings, options))
    inputs = read_inputs(settings, options)
    sample, model, window = load_current(settings, options)
    served = served_by(sample, model, settings)  # names the run and re-scores the reference
    reference, scored_by = reference_for(reference, served, settings)
    summary = compare(
        reference,
        sample.current,
        settings,
        model=served,
        importance=importance,
        labeled=sample.labeled,
        totals=sample.totals,
        inputs=inputs,
        cache=calibration_folder(settings),
    )
    if registry is not None:
        summary.model.run_id = training_run(registry, summary.model)
    folder = new_run_folder(settings, started)
    extra: dict[str, Any] = {
        "window": window,
        "started": started.isoformat(),
        "min_rows": settings.drift.min_rows,
    }
    if scored_by is not None:
        extra["reference_scored_by"] = scored_by
    history = read_history(reports_folder(settings), folder, summary, settings.drift.history_runs)
    write_run_folder(summary, folder, extra, str(reference_path(settings, options)), history)
    if registry is not None:  # the plots as PNG files, logged with the folder
        write_plots(history, ranked(summary.data_drift.columns), folder)
        extra["mlflow_run_id"] = log_to_mlflow(
            registry, settings, summary, folder, window, lambda run: add_run_id(folder, run)
        )
        write_summary(summary, folder, extra)
    if options.workspace and summary.snapshots:
        add_to_workspace(settings, summary, folder)
    skipped = len(window.get("skipped_files", []))
    export_metrics(summary, options.pushgateway, options.textfile, time.time(), skipped)
    write_latest(settings, folder, summary)
    if advances_state(options, summary):
        write_state(settings, window["until"], folder)
    return JobResult(summary, folder, window, scored_by)
