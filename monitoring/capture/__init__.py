"""The capture log: what the service predicted and the labels that came back later.

One package owns the format, so the writer (the service) and the readers (the drift job,
the retrain command, tests, notebooks) cannot disagree. Its modules, in the order a row
travels: ``schema`` (kinds, column names, stored types), ``frames`` (a served batch or
records as one framed Arrow record batch, and a segment's frames back), ``wal`` (the JSON
line of a small model call, and of segments an older version left, and back),
``segments`` (the local write-ahead files),
``writer`` (appends on the request path, compacts off it, recovers at start), ``store``
(the Parquet files under ``capture.path``), ``window`` (a window read back, labels joined)
and ``sample`` (a seeded sample of a window and its totals). This face re-exports the
names other modules use.
"""

from monitoring.capture.sample import WindowSample, WindowTotals, sample_frame, smallest
from monitoring.capture.schema import (
    KINDS,
    LABEL,
    LABELS,
    MODEL_NAME,
    MODEL_VERSION,
    PREDICTIONS,
    REQUEST_ID,
    SERVED_COLUMNS,
    TIMESTAMP,
    storable_frame,
    storable_table,
)
from monitoring.capture.segments import Segment
from monitoring.capture.store import capture_path, probe, read_kind, write_frame, write_table
from monitoring.capture.wal import (
    FeatureBlocks,
    ScoredBatch,
    lines_table,
    records_line,
    scored_line,
    scored_lines_table,
)
from monitoring.capture.window import LatestLabels, read_window, read_window_sample
from monitoring.capture.writer import CaptureWriter, writer_from_settings

__all__ = [
    "KINDS",
    "LABEL",
    "LABELS",
    "MODEL_NAME",
    "MODEL_VERSION",
    "PREDICTIONS",
    "REQUEST_ID",
    "SERVED_COLUMNS",
    "TIMESTAMP",
    "CaptureWriter",
    "FeatureBlocks",
    "LatestLabels",
    "ScoredBatch",
    "Segment",
    "WindowSample",
    "WindowTotals",
    "capture_path",
    "lines_table",
    "probe",
    "read_kind",
    "read_window",
    "read_window_sample",
    "records_line",
    "sample_frame",
    "scored_line",
    "scored_lines_table",
    "smallest",
    "storable_frame",
    "storable_table",
    "write_frame",
    "write_table",
    "writer_from_settings",
]
