"""The run's inputs: the settings it may use, the reference set and the champion's feature
importance, and the current window (a capture window or a ``--current`` file)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from monitoring import drift_reports
from monitoring.capture import WindowSample, capture_path, read_window_sample, sample_frame
from monitoring.drift_job.options import JobOptions
from monitoring.drift_job.rescore import has_predictions, score_with_champion
from monitoring.drift_summary import ModelInfo
from pipeline.io import read_table
from pipeline.paths import IMPORTANCE_FILE, INPUTS_FILE, REFERENCE_FILE
from pipeline.schema import PREDICTION, SchemaError
from pipeline.settings import Settings, SettingsError

logger = logging.getLogger("monitoring.drift_job")


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_settings(settings: Settings) -> None:
    """Settings the job cannot judge with, refused before any file is read or scanned.

    Raises :class:`SettingsError` naming the ``params.yaml`` key (the command exits 2)."""
    try:
        drift_reports.check_methods(settings)
    except SchemaError as error:
        raise SettingsError(str(error)) from None


def reference_path(settings: Settings, options: JobOptions) -> Path:
    if options.reference is not None:
        return options.reference
    return settings.path(REFERENCE_FILE)


def read_reference(settings: Settings, options: JobOptions) -> pd.DataFrame:
    """The reference set the pipeline's evaluate stage wrote (or ``--reference``)."""
    source = reference_path(settings, options)
    if not source.exists():
        raise FileNotFoundError(
            f"reference set not found: {source} (the pipeline's evaluate stage writes it: "
            "`dvc repro evaluate`)"
        )
    return read_table(source)


def inputs_path(settings: Settings, options: JobOptions) -> Path:
    """The training rows' features, beside the reference set they go with."""
    if options.reference is not None:
        return options.reference.with_name(Path(INPUTS_FILE).name)
    return settings.path(INPUTS_FILE)


def read_inputs(settings: Settings, options: JobOptions) -> pd.DataFrame | None:
    """The training rows data drift also compares against (``drift.reference: all``), or
    ``None``: ``drift.reference: test``, or no such file (a reference set written before
    the evaluate stage wrote it; the summary's ``data_drift.reference`` then says
    ``test``)."""
    if settings.drift.reference != "all":
        return None
    source = inputs_path(settings, options)
    if not source.exists():
        logger.warning(
            "drift: no training inputs at %s (`dvc repro evaluate` writes them); data drift "
            "compares against the test split only",
            source,
        )
        return None
    return read_table(source)


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


COMPACTION_SECONDS = 30.0  # allowed for a sealed segment's write into the store (S3 too)


def settled_until(settings: Settings, now: datetime) -> datetime:
    """Where a default window ends: ``now`` less the longest a served row waits outside
    the store, ``capture.flush_seconds`` in its write-ahead segment (the writer seals
    every open segment that often) and :data:`COMPACTION_SECONDS` for the write.

    The window is half-open, [since, until), and the next one starts at its ``until``,
    so a row stamped before ``until`` but not yet compacted would fall between the two
    and never be judged; ending at ``now`` lost the rows answered in the last
    ``flush_seconds``. The latest timestamp already in the store is no safe end either:
    each worker flushes its own segments, so a row compacted later can carry an earlier
    timestamp than another worker's row compacted before it. Rows that wait longer (a
    store that refuses writes for longer, a dead worker's segments recovered at its next
    start) still land before the window; ``--since``/``--until`` judge them on purpose.
    """
    return now - timedelta(seconds=settings.capture.flush_seconds + COMPACTION_SECONDS)


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


def _load_file(
    path: Path, settings: Settings
) -> tuple[WindowSample, ModelInfo | None, dict[str, Any]]:
    """A ``--current`` file, read whole then sampled; rows without predictions are scored
    by the champion (which then is the model that served them)."""
    rows, seed = settings.drift.sample_rows, settings.data.seed
    frame = read_table(path)
    source: dict[str, Any] = {"source": str(path)}
    if frame.empty:  # nothing to score: too little data, judged as such
        return sample_frame(frame, settings, rows, seed), None, source
    if not has_predictions(frame, settings):
        # The file's own prediction columns (the packager's) are not ours: drop them.
        frame = frame.drop(columns=[c for c in settings.data.drop if c in frame.columns])
        sample = sample_frame(frame, settings, rows, seed)
        sample.current, model = score_with_champion(sample.current, settings)
        if not sample.labeled.empty:
            sample.labeled, _ = score_with_champion(sample.labeled, settings)
        return sample, model, {**source, "scored_by": "champion"}
    extra = [c for c in settings.data.drop if c in frame.columns and c != PREDICTION]
    return sample_frame(frame.drop(columns=extra), settings, rows, seed), None, source


def load_current(
    settings: Settings, options: JobOptions
) -> tuple[WindowSample, ModelInfo | None, dict[str, Any]]:
    """The current window as a sample (every row when it holds no more than
    ``drift.sample_rows``) with its whole-window totals, the model that scored it if the
    job scored it, and a description of the window. A capture window is read in one
    streaming pass and never held whole; a ``--current`` file is read whole, then sampled
    the same way. The default window (no ``--since``, no ``--until``) ends at
    :func:`settled_until`, an explicit one at ``--until`` or now."""
    if options.current is not None:
        return _load_file(options.current, settings)
    since = options.since if options.since is not None else read_state(settings)
    until = options.until
    if until is None:  # the default window settles; one with --since alone ends now
        until = settled_until(settings, utc_now()) if options.since is None else utc_now()
    rows, seed = settings.drift.sample_rows, settings.data.seed
    sample = read_window_sample(capture_path(settings), settings, rows, seed, since, until)
    window = {
        "source": capture_path(settings),
        "since": since.isoformat() if since else None,
        "until": until.isoformat(),
        "skipped_files": [skipped.as_dict() for skipped in sample.skipped],
        "labels_unjoined": sample.labels_unjoined,
    }
    return sample, None, window
