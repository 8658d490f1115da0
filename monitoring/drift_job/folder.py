"""The run's files: the reports folder and its lock, one folder per run (``report.html``,
``performance.html``, ``summary.json``), ``latest.json`` and the state file.

Every JSON file is written then renamed, so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from monitoring.drift_history import History
from monitoring.drift_page import PageContext, add_section, fill_run_id, insufficient_page
from monitoring.drift_summary import Summary
from pipeline.paths import (
    DRIFT_CALIBRATION_FOLDER,
    DRIFT_LATEST_FILE,
    DRIFT_LOCK_FILE,
    DRIFT_PERFORMANCE_REPORT_FILE,
    DRIFT_REPORT_FILE,
    DRIFT_SUMMARY_FILE,
)
from pipeline.settings import Settings


def reports_folder(settings: Settings) -> Path:
    return settings.path(settings.drift.reports)


def calibration_folder(settings: Settings) -> Path:
    """Where calibrations are kept between runs (:mod:`monitoring.calibration_cache`)."""
    return reports_folder(settings) / DRIFT_CALIBRATION_FOLDER


def lock_path(settings: Settings) -> Path:
    """The file lock two runs (and a run and a retrain) never hold at once."""
    return reports_folder(settings) / DRIFT_LOCK_FILE


def write_json(payload: dict[str, Any], path: Path) -> None:
    """Write then rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def new_run_folder(settings: Settings, started: datetime) -> Path:
    """``<drift.reports>/<UTC start>``, with ``-2``, ``-3``... when runs share a second."""
    base = reports_folder(settings)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    folder, n = base / stamp, 1
    while folder.exists():
        n += 1
        folder = base / f"{stamp}-{n}"
    folder.mkdir(parents=True)
    return folder


def write_run_folder(
    summary: Summary,
    folder: Path,
    extra: dict[str, Any],
    reference: str | None = None,
    history: History | None = None,
) -> None:
    """``report.html`` (and ``performance.html`` with labels) plus ``summary.json``;
    ``reference`` is the reference set's path the page names, ``history`` the last runs
    its performance plot shows."""
    snapshots = summary.snapshots
    report = folder / DRIFT_REPORT_FILE
    context = PageContext(
        window=extra.get("window", {}),
        started=extra.get("started"),
        reference=reference,
        reference_scored_by=extra.get("reference_scored_by"),
        history=history,
    )
    if "report" in snapshots:
        snapshots["report"].save_html(str(report))
        report.write_text(add_section(report.read_text(), summary, context))
    else:
        report.write_text(insufficient_page(summary, context, extra["min_rows"]))
    if "performance" in snapshots:
        snapshots["performance"].save_html(str(folder / DRIFT_PERFORMANCE_REPORT_FILE))
    write_summary(summary, folder, extra)


def add_run_id(folder: Path, run_id: str) -> None:
    """The MLflow monitoring run's id on the run folder's page, once it is known."""
    report = folder / DRIFT_REPORT_FILE
    if report.exists():
        report.write_text(fill_run_id(report.read_text(), run_id))


def write_summary(summary: Summary, folder: Path, extra: dict[str, Any]) -> None:
    payload = {**summary.model_dump(mode="json"), **extra}
    payload["drift_detected"] = summary.drift_detected
    payload["operator_status"] = summary.operator_status
    write_json(payload, folder / DRIFT_SUMMARY_FILE)


def add_to_summary(folder: Path, key: str, value: Any) -> None:
    """One more key in a written run's ``summary.json`` (the schedule's retrain outcome)."""
    path = folder / DRIFT_SUMMARY_FILE
    payload = json.loads(path.read_text())
    payload[key] = value
    write_json(payload, path)


def write_latest(settings: Settings, folder: Path, summary: Summary) -> None:
    """``latest.json``: the newest complete run, written after every other output."""
    write_json(
        {
            "folder": folder.name,
            "summary": f"{folder.name}/{DRIFT_SUMMARY_FILE}",
            "report": f"{folder.name}/{DRIFT_REPORT_FILE}",
            "status": summary.status,
            "drift_detected": summary.drift_detected,
        },
        reports_folder(settings) / DRIFT_LATEST_FILE,
    )


def write_state(settings: Settings, until: str, folder: Path) -> None:
    """The end of the window just judged: where the next default window starts."""
    write_json({"until": until, "run": folder.name}, settings.path(settings.drift.state))
