"""One run of the drift job: read the window, compare, and write every output.

The pure comparison is :func:`monitoring.drift.compare`; this module is its I/O shell,
shared by ``mlstack drift run`` and ``mlstack drift schedule``. A run first refuses a
missing MLflow store (before writing anything), then writes, in order: the run folder
(``report.html``, ``summary.json``), the MLflow run, the Evidently workspace snapshot, the
Prometheus series, and last ``latest.json`` and the state file. A run that fails half way
leaves both where they were: ``latest.json`` points at the newest complete run, and the
next run retries the same window (see :func:`advances_state`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import environment
from pipeline.paths import IMPORTANCE_FILE, REFERENCE_FILE
from pipeline.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from monitoring.capture import WindowSample
    from monitoring.drift_summary import ModelInfo, Summary

logger = logging.getLogger(__name__)

LOCK_FILE = ".drift.lock"
LATEST_FILE = "latest.json"
INSUFFICIENT_HTML = """<!doctype html><html><head><meta charset="utf-8"><title>mlstack drift</title>
</head><body><h1>Insufficient data</h1><p>{rows} current row(s), fewer than the {needed} needed
for a verdict (<code>drift.min_rows</code>). No drift was judged.</p></body></html>
"""


class NothingToScore(RuntimeError):
    """Rows lack predictions and no champion could be loaded to score them."""


class ReferenceMismatch(RuntimeError):
    """The reference set was scored by another model than the window's, and the window's
    could not be loaded to score it again."""


@dataclass
class JobOptions:
    """What one run reads and where it reports; the command line fills it in."""

    current: Path | None = None
    reference: Path | None = None
    since: datetime | None = None
    until: datetime | None = None
    pushgateway: str | None = None
    textfile: Path | None = None
    mlflow: bool = True
    workspace: bool = True


@dataclass
class JobResult:
    summary: Summary
    folder: Path
    window: dict[str, Any] = field(default_factory=dict)
    reference_scored_by: dict[str, Any] | None = None  # see :func:`reference_for`


def utc_now() -> datetime:
    return datetime.now(UTC)


def reference_path(settings: Settings, options: JobOptions) -> Path:
    if options.reference is not None:
        return options.reference
    return settings.path(REFERENCE_FILE)


def importance_path(settings: Settings, options: JobOptions) -> Path:
    """The champion's feature importance, beside the reference set it was computed with."""
    if options.reference is not None:
        return options.reference.with_name(Path(IMPORTANCE_FILE).name)
    return settings.path(IMPORTANCE_FILE)


def read_importance(path: Path) -> dict[str, float] | None:
    """Permutation importance per feature, or ``None`` (every column weighs the same)."""
    try:
        payload = json.loads(path.read_text())
        return {str(c): float(v) for c, v in payload["importance"].items()}
    except FileNotFoundError:
        logger.warning("drift: no feature importance at %s; columns weigh the same", path)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        logger.warning("drift: ignoring unreadable importance file %s: %s", path, error)
    return None


def reports_folder(settings: Settings) -> Path:
    return settings.path(settings.drift.reports)


def lock_path(settings: Settings) -> Path:
    return reports_folder(settings) / LOCK_FILE


def read_state(settings: Settings) -> datetime | None:
    """End of the last successful capture window, or ``None`` before the first run."""
    path = settings.path(settings.drift.state)
    try:
        return datetime.fromisoformat(json.loads(path.read_text())["until"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as error:
        logger.warning("drift: ignoring unreadable state file %s: %s", path, error)
        return None


def _write_json(payload: dict[str, Any], path: Path) -> None:
    """Write then rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def _has_predictions(frame: pd.DataFrame, settings: Settings) -> bool:
    from pipeline.schema import PREDICTION, proba_column

    classes = settings.data.classes or []
    wanted = [PREDICTION, *(proba_column(c) for c in classes)]
    return bool(classes) and all(c in frame.columns for c in wanted)


def score_with_champion(frame: pd.DataFrame, settings: Settings) -> tuple[pd.DataFrame, ModelInfo]:
    """Add ``prediction`` and ``proba_<class>`` from the registry's champion."""
    from monitoring.drift_summary import ModelInfo
    from pipeline.tracking import champion_uri, client, find_champion, load_model, tracking_uri

    try:
        champion = find_champion(client(settings), settings)
        model = load_model(f"models:/{champion.name}/{champion.version}", tracking_uri(settings))
    except Exception as error:
        raise NothingToScore(
            f"the rows have no predictions and the champion {champion_uri(settings)} "
            f"could not be loaded to score them: {error}"
        ) from error
    scored = scored_with(frame, model, settings)
    return scored, ModelInfo(name=champion.name, version=champion.version)


def scored_with(frame: pd.DataFrame, model: Any, settings: Settings) -> pd.DataFrame:
    """``frame`` with ``prediction`` and ``proba_<class>`` from ``model``, in place of any
    it had."""
    import pandas as pd

    from pipeline.model import predict_frame
    from pipeline.schema import PREDICTION, PROBA_PREFIX, coerce_features

    stale = [c for c in frame.columns if c == PREDICTION or str(c).startswith(PROBA_PREFIX)]
    predictions = predict_frame(model, coerce_features(frame, settings.data))
    return pd.concat([frame.drop(columns=stale), predictions], axis=1)


def load_current(
    settings: Settings, options: JobOptions
) -> tuple[WindowSample, ModelInfo | None, dict[str, Any]]:
    """The current window as a sample (every row when it holds no more than
    ``drift.sample_rows``) with its whole-window totals, the model that scored it if known,
    and a description of the window. A capture window is read in one streaming pass and
    never held whole; a ``--current`` file is read whole, then sampled the same way."""
    from monitoring.capture import capture_path, read_window_sample, sample_frame

    rows, seed = settings.drift.sample_rows, settings.data.seed
    if options.current is not None:
        from pipeline.io import read_table

        frame = read_table(options.current)
        source = {"source": str(options.current)}
        if frame.empty:  # nothing to score: too little data, judged as such
            return sample_frame(frame, settings, rows, seed), None, source
        if not _has_predictions(frame, settings):
            # The file's own prediction columns (the packager's) are not ours: drop them.
            frame = frame.drop(columns=[c for c in settings.data.drop if c in frame.columns])
            sample = sample_frame(frame, settings, rows, seed)
            sample.current, model = score_with_champion(sample.current, settings)
            if not sample.labeled.empty:
                sample.labeled, _ = score_with_champion(sample.labeled, settings)
            return sample, model, {**source, "scored_by": "champion"}
        extra = [c for c in settings.data.drop if c in frame.columns and c != "prediction"]
        return sample_frame(frame.drop(columns=extra), settings, rows, seed), None, source

    since = options.since if options.since is not None else read_state(settings)
    until = options.until if options.until is not None else utc_now()
    sample = read_window_sample(capture_path(settings), settings, rows, seed, since, until)
    window = {
        "source": capture_path(settings),
        "since": since.isoformat() if since else None,
        "until": until.isoformat(),
    }
    return sample, None, window


def served_by(
    sample: WindowSample, model: ModelInfo | None, settings: Settings
) -> ModelInfo | None:
    """The model version that scored the window (the one that scored most of its sampled
    rows when a champion switch falls inside it), if the rows or the run say."""
    from monitoring.drift_summary import ModelInfo

    if model is not None:
        return model
    from monitoring.capture import MODEL_NAME, MODEL_VERSION

    current = sample.current
    if MODEL_VERSION not in current.columns:
        return None
    versions = current[MODEL_VERSION].dropna().astype(str)
    if versions.empty:
        return None
    version = str(versions.value_counts().idxmax())
    name = settings.model.name
    if MODEL_NAME in current.columns:
        names = current.loc[versions.index[versions == version], MODEL_NAME].dropna()
        name = str(names.iloc[0]) if len(names) else name
    return ModelInfo(name=name, version=version)


def reference_for(
    reference: pd.DataFrame, served: ModelInfo | None, settings: Settings
) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """The reference set with the predictions of the model version that served the window.

    ``evaluate`` scores the reference with its candidate, and names it in the set's
    ``model_name`` and ``model_version`` columns. The gate may reject that candidate, and
    ``mlstack model rollback`` moves the champion without running ``evaluate``: the
    reference then holds another model's predictions, and comparing them with the
    window's would judge two models, not the data (a false prediction or concept drift).
    Such a reference is scored again by the served version, from the registry. A set
    that names no version (written by hand, or before this check) is used as it is.
    Returns the set and what scored it, for the summary.
    """
    from pipeline.tracking import load_model, tracking_uri

    if served is None or "model_version" not in reference.columns:
        return reference, None
    scored = sorted(set(reference["model_version"].dropna().astype(str)))
    names = (
        set(reference["model_name"].dropna().astype(str)) if "model_name" in reference else set()
    )
    if scored == [served.version] and names <= {served.name}:
        return reference, {"model_version": served.version, "rescored_from": None}
    uri = f"models:/{served.name}/{served.version}"
    try:
        model = load_model(uri, tracking_uri(settings))
    except Exception as error:
        raise ReferenceMismatch(
            f"the window was served by {served.name} version {served.version}, but the "
            f"reference set was scored by version {', '.join(scored) or 'unknown'}, and "
            f"{uri} could not be loaded to score it again: {error}"
        ) from error
    rescored = scored_with(reference, model, settings)
    rescored["model_name"] = served.name
    rescored["model_version"] = served.version
    logger.info(
        "drift: the reference set was scored by version %s; scored again by %s",
        ", ".join(scored) or "unknown",
        uri,
    )
    return rescored, {"model_version": served.version, "rescored_from": ", ".join(scored)}


def _run_folder(settings: Settings, started: datetime) -> Path:
    base = reports_folder(settings)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    folder, n = base / stamp, 1
    while folder.exists():
        n += 1
        folder = base / f"{stamp}-{n}"
    folder.mkdir(parents=True)
    return folder


def write_run_folder(summary: Summary, folder: Path, extra: dict[str, Any]) -> None:
    """``report.html`` (and ``performance.html`` with labels) plus ``summary.json``."""
    from monitoring.drift_page import add_section

    snapshots = summary.snapshots
    if "report" in snapshots:
        report = folder / "report.html"
        snapshots["report"].save_html(str(report))
        report.write_text(add_section(report.read_text(), summary))
    else:
        html = INSUFFICIENT_HTML.format(rows=summary.rows.current, needed=extra["min_rows"])
        (folder / "report.html").write_text(html)
    if "performance" in snapshots:
        snapshots["performance"].save_html(str(folder / "performance.html"))
    write_summary(summary, folder, extra)


def write_summary(summary: Summary, folder: Path, extra: dict[str, Any]) -> None:
    payload = {**summary.model_dump(mode="json"), **extra}
    payload["drift_detected"] = summary.drift_detected
    _write_json(payload, folder / "summary.json")


def add_to_summary(folder: Path, key: str, value: Any) -> None:
    """One more key in a written run's ``summary.json`` (the schedule's retrain outcome)."""
    path = folder / "summary.json"
    payload = json.loads(path.read_text())
    payload[key] = value
    _write_json(payload, path)


def write_latest(settings: Settings, folder: Path, summary: Summary) -> None:
    base = reports_folder(settings)
    _write_json(
        {
            "folder": folder.name,
            "summary": f"{folder.name}/summary.json",
            "report": f"{folder.name}/report.html",
            "status": summary.status,
            "drift_detected": summary.drift_detected,
        },
        base / LATEST_FILE,
    )


def log_to_mlflow(
    registry: MlflowClient,
    settings: Settings,
    summary: Summary,
    folder: Path,
    window: dict[str, Any],
) -> str:
    """A run in the ``monitoring`` experiment: verdicts as metrics, the folder as artifacts.

    Logged through the settings' client (:func:`pipeline.tracking.client`, which refuses a
    missing embedded store instead of creating one), not MLflow's process-wide state.
    """
    from mlflow.entities import Metric, Param, RunStatus

    from pipeline.tracking import MONITORING_EXPERIMENT, experiment_id

    metrics: dict[str, float] = {
        "rows_reference": summary.rows.reference,
        "rows_current": summary.rows.current,
        "rows_labeled": summary.rows.labeled,
        "rows_sampled": summary.sample.sample_rows,
        "rows_labeled_sampled": summary.sample.labeled_sample_rows,
    }
    kinds = ("data_drift", "prediction_drift", "label_drift", "performance", "concept_drift")
    for kind in (*kinds, "data_quality"):
        detected = getattr(summary, kind).detected
        if detected is not None:
            metrics[f"{kind}_detected"] = float(detected)
    if summary.data_drift.share is not None:
        metrics["data_drift_share"] = summary.data_drift.share
    if summary.data_drift.weighted_share is not None:
        metrics["data_drift_weighted_share"] = summary.data_drift.weighted_share
    for column, verdict in summary.data_drift.columns.items():
        metrics[f"drift_score_{column}"] = verdict.score
    performance = summary.performance
    for name in ("reference", "estimated", "realized", "lower_threshold"):
        value = getattr(performance, name)
        if value is not None:
            metrics[f"performance_{performance.metric}_{name}"] = value
    if summary.prediction_drift.score is not None:
        metrics["prediction_drift_score"] = summary.prediction_drift.score
    concept = summary.concept_drift
    for name in ("reference", "current", "drop", "gap", "p_value"):
        value = getattr(concept, name)
        if value is not None:
            metrics[f"{concept.metric}_{name}"] = value
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
            metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
            params=[Param(f"window_{k}", str(v)) for k, v in window.items()],
        )
        registry.log_artifacts(run_id, str(folder), artifact_path="drift")
    except Exception:
        registry.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    registry.set_terminated(run_id)
    return run_id


def _new_project(workspace: Any, name: str) -> Any:
    """The workspace project, with a dashboard of the verdicts over time."""
    from evidently.sdk.models import PanelMetric
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
    from evidently.ui.workspace import Workspace

    workspace = Workspace.create(workspace_location(settings))
    found = workspace.search_project(settings.drift.project)
    project = found[0] if found else _new_project(workspace, settings.drift.project)
    for kind, snapshot in summary.snapshots.items():
        name = f"{kind} {folder.name} (model {summary.model.version})"
        workspace.add_run(project.id, snapshot, name=name)


def export_metrics(summary: Summary, options: JobOptions, finished: float) -> None:
    from monitoring.drift_metrics import push, write_textfile

    gateway = options.pushgateway or os.environ.get(environment.PUSHGATEWAY_URL)
    if gateway:
        try:
            push(summary, gateway, finished)
        except OSError as error:
            # The run's files are written; failing keeps the window for the next run and
            # lets the stale-job alert speak for a Pushgateway that stays away.
            raise RuntimeError(
                f"could not push to the Pushgateway at {gateway}: {error}"
            ) from error
    if options.textfile is not None:
        write_textfile(summary, options.textfile, finished)


def advances_state(options: JobOptions, summary: Summary) -> bool:
    """Only a judged default window moves the state on.

    A file or an explicit window is an ad-hoc look and leaves the schedule's place alone;
    a window too small to judge is kept, so rows pile up until there are enough.
    """
    default_window = options.current is None and options.since is None and options.until is None
    return default_window and summary.status == "ok"


def run_once(settings: Settings, options: JobOptions) -> JobResult:
    """Compare one window and write every output; the state moves on only on success."""
    from monitoring.drift import compare
    from pipeline.io import read_table
    from pipeline.tracking import client

    started = utc_now()
    registry = client(settings) if options.mlflow else None  # no store: refused, nothing written
    source = reference_path(settings, options)
    if not source.exists():
        raise FileNotFoundError(
            f"reference set not found: {source} (the pipeline's evaluate stage writes it: "
            "`dvc repro evaluate`)"
        )
    reference = read_table(source)
    importance = read_importance(importance_path(settings, options))
    sample, model, window = load_current(settings, options)
    reference, scored_by = reference_for(reference, served_by(sample, model, settings), settings)
    summary = compare(
        reference,
        sample.current,
        settings,
        model=model,
        importance=importance,
        labeled=sample.labeled,
        totals=sample.totals,
    )
    folder = _run_folder(settings, started)
    extra: dict[str, Any] = {
        "window": window,
        "started": started.isoformat(),
        "min_rows": settings.drift.min_rows,
    }
    if scored_by is not None:
        extra["reference_scored_by"] = scored_by
    write_run_folder(summary, folder, extra)
    if registry is not None:
        extra["mlflow_run_id"] = log_to_mlflow(registry, settings, summary, folder, window)
        write_summary(summary, folder, extra)
    if options.workspace and summary.snapshots:
        add_to_workspace(settings, summary, folder)
    export_metrics(summary, options, time.time())
    write_latest(settings, folder, summary)
    if advances_state(options, summary):
        _write_json(
            {"until": window["until"], "run": folder.name}, settings.path(settings.drift.state)
        )
    return JobResult(summary, folder, window, scored_by)
