"""The drift job: the I/O shell around :func:`monitoring.drift.compare`, shared by
``mlstack drift run`` and ``mlstack drift schedule``.

One module per job: :mod:`.run` orchestrates one run; :mod:`.inputs` reads the settings'
checks, the reference set, the importance and the current window; :mod:`.rescore` scores
rows from the registry with the one "served model" rule (:mod:`monitoring.served_model`);
:mod:`.folder` writes the run folder, ``latest.json`` and the state; :mod:`.exports` logs
to MLflow, the Evidently workspace and Prometheus. The names the commands use are
re-exported here.
"""

from __future__ import annotations

from monitoring.drift_job.folder import add_to_summary, lock_path, reports_folder
from monitoring.drift_job.inputs import check_settings, importance_path, read_importance
from monitoring.drift_job.options import JobOptions
from monitoring.drift_job.rescore import NothingToScore, ReferenceMismatch
from monitoring.drift_job.run import JobResult, run_once

__all__ = [
    "JobOptions",
    "JobResult",
    "NothingToScore",
    "ReferenceMismatch",
    "add_to_summary",
    "check_settings",
    "importance_path",
    "lock_path",
    "read_importance",
    "reports_folder",
    "run_once",
]
