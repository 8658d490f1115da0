"""The capture log: what the service predicted and the labels that came back later.

One module owns the format, so the writer (the service) and the readers (the drift
job, tests, notebooks) cannot disagree. Layout under ``capture.path`` (a local folder or
an fsspec URL such as ``s3://bucket/prefix``)::

    predictions/date=YYYY-MM-DD/<uuid>.parquet   request_id, timestamp, model_name,
                                                  model_version, <features>, prediction,
                                                  proba_<class>...
    labels/date=YYYY-MM-DD/<uuid>.parquet        request_id, timestamp, label

Each file is written under a hidden temporary name and then renamed, so a file that
is visible is complete. Writing happens on a background thread fed by a bounded
buffer: a full buffer drops rows (and says so through ``on_dropped`` and the log)
instead of slowing or failing the request that produced them.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd

from pipeline.schema import PREDICTION, normalize_label
from pipeline.settings import Settings

logger = logging.getLogger(__name__)

PREDICTIONS = "predictions"
LABELS = "labels"
KINDS = (PREDICTIONS, LABELS)
REQUEST_ID = "request_id"
TIMESTAMP = "timestamp"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
LABEL = "label"

Record = Mapping[str, Any]


def _fs(path: str | Path) -> tuple[Any, str]:
    fs, root = fsspec.core.url_to_fs(str(path))
    return fs, root.rstrip("/")


def to_frame(kind: str, records: Sequence[Record], numerical: Iterable[str] = ()) -> pd.DataFrame:
    """Records as a frame with the log's plain dtypes.

    Timestamps are UTC, ``numerical`` columns float64 and every other column an object
    column of strings: Evidently and the drift job skip nullable extension dtypes.
    """
    frame = pd.DataFrame.from_records(list(records))
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True).astype("datetime64[ns, UTC]")
    numbers = set(numerical)
    for column in frame.columns:
        if column == TIMESTAMP:
            continue
        if column in numbers or column.startswith("proba_"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        else:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    if kind == LABELS:
        # Element by element: a mixed column (1, 1.0, "1") must still give one spelling.
        frame[LABEL] = pd.Series([normalize_label(v) for v in frame[LABEL]], dtype=object)
    return frame


def write_frame(path: str | Path, kind: str, frame: pd.DataFrame) -> list[str]:
    """Write ``frame`` as one Parquet file per UTC date; return the final file paths."""
    if kind not in KINDS:
        raise ValueError(f"unknown capture kind {kind!r}, expected one of {KINDS}")
    fs, root = _fs(path)
    written = []
    days = frame[TIMESTAMP].dt.strftime("%Y-%m-%d")
    for day, part in frame.groupby(days, sort=True):
        folder = f"{root}/{kind}/date={day}"
        fs.makedirs(folder, exist_ok=True)
        name = f"{uuid.uuid4().hex}.parquet"
        temporary, final = f"{folder}/.{name}.tmp", f"{folder}/{name}"
        with fs.open(temporary, "wb") as handle:
            part.to_parquet(handle, index=False)
        fs.mv(temporary, final)
        written.append(final)
    return written


class CaptureWriter:
    """Buffers records in memory and writes them from a background thread.

    ``add`` never blocks on I/O: it appends under a lock or drops what does not fit in
    ``queue_rows``. The thread flushes a kind once it holds ``flush_rows`` rows or
    ``flush_seconds`` have passed; ``close`` flushes everything left.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        numerical: Sequence[str] = (),
        queue_rows: int = 100_000,
        flush_rows: int = 5_000,
        flush_seconds: float = 5.0,
        on_written: Callable[[str, int], None] | None = None,
        on_dropped: Callable[[str, int], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
    ) -> None:
        self.path = str(path)
        self.numerical = list(numerical)
        self.queue_rows = queue_rows
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._on_written = on_written
        self._on_dropped = on_dropped
        self._on_queue = on_queue
        self._buffers: dict[str, list[Record]] = {kind: [] for kind in KINDS}
        self._pending = 0  # rows buffered or being written: what queue_rows bounds
        self._dropped = 0
        self._last_drop_log = 0.0
        self._condition = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def dropped(self) -> int:
        return self._dropped

    def start(self) -> CaptureWriter:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
            self._thread.start()
        return self

    def add(self, kind: str, records: Sequence[Record]) -> int:
        """Queue ``records``; return how many were accepted (the rest are dropped)."""
        if kind not in KINDS:
            raise ValueError(f"unknown capture kind {kind!r}, expected one of {KINDS}")
        with self._condition:
            room = 0 if self._closing else max(self.queue_rows - self._pending, 0)
            accepted = list(records[:room])
            self._buffers[kind].extend(accepted)
            self._pending += len(accepted)
            pending = self._pending
            if len(self._buffers[kind]) >= self.flush_rows:
                self._condition.notify()
        dropped = len(records) - len(accepted)
        if dropped:
            self._dropped += dropped
            self._log_drop(kind, dropped)
            if self._on_dropped is not None:
                self._on_dropped(kind, dropped)
        if self._on_queue is not None:
            self._on_queue(pending)
        return len(accepted)

    def _log_drop(self, kind: str, dropped: int) -> None:
        now = time.monotonic()
        if now - self._last_drop_log >= 10.0:
            self._last_drop_log = now
            logger.warning(
                "capture queue full (%d rows): dropped %d %s row(s), %d dropped in total",
                self.queue_rows,
                dropped,
                kind,
                self._dropped,
            )

    def flush(self) -> None:
        """Write everything buffered now, on the calling thread."""
        with self._condition:
            batches = {kind: rows for kind, rows in self._buffers.items() if rows}
            self._buffers = {kind: [] for kind in KINDS}
        for kind, rows in batches.items():
            self._write(kind, rows)

    def _write(self, kind: str, rows: list[Record]) -> None:
        try:
            write_frame(self.path, kind, to_frame(kind, rows, self.numerical))
        except Exception:
            # Losing a batch must not kill the writer thread; say loudly what was lost.
            logger.exception(
                "capture: could not write %d %s row(s) to %s", len(rows), kind, self.path
            )
            self._dropped += len(rows)
            if self._on_dropped is not None:
                self._on_dropped(kind, len(rows))
        else:
            if self._on_written is not None:
                self._on_written(kind, len(rows))
        finally:
            with self._condition:
                self._pending -= len(rows)
                pending = self._pending
            if self._on_queue is not None:
                self._on_queue(pending)

    def _run(self) -> None:
        deadline = time.monotonic() + self.flush_seconds
        while True:
            with self._condition:
                full = any(len(rows) >= self.flush_rows for rows in self._buffers.values())
                if not (full or self._closing):
                    self._condition.wait(timeout=max(deadline - time.monotonic(), 0.0))
                closing = self._closing
                full = any(len(rows) >= self.flush_rows for rows in self._buffers.values())
            if full or closing or time.monotonic() >= deadline:
                self.flush()
                deadline = time.monotonic() + self.flush_seconds
            if closing:
                return

    def close(self, timeout: float = 30.0) -> None:
        """Stop accepting rows and write everything left; safe to call more than once."""
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.flush()


def writer_from_settings(settings: Settings, **hooks: Any) -> CaptureWriter:
    """A writer for ``settings.capture``, not started."""
    capture = settings.capture
    return CaptureWriter(
        capture_path(settings),
        numerical=settings.data.features.numerical,
        queue_rows=capture.queue_rows,
        flush_rows=capture.flush_rows,
        flush_seconds=capture.flush_seconds,
        **hooks,
    )


def capture_path(settings: Settings) -> str:
    """``capture.path`` as a URL or an absolute local path (relative to the project root)."""
    raw = settings.capture.path
    return raw if "://" in raw else str(settings.path(raw))


def _day(value: datetime | None) -> date | None:
    return None if value is None else _utc(value).date()


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read_kind(
    path: str | Path, kind: str, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """Every file of one kind whose date partition overlaps [since, until].

    A file that cannot be read is skipped with a warning naming it, so one corrupt
    file does not hide a whole window.
    """
    fs, root = _fs(path)
    first, last = _day(since), _day(until)
    frames = []
    for folder in sorted(fs.glob(f"{root}/{kind}/date=*")):
        try:
            day = date.fromisoformat(folder.rstrip("/").rsplit("date=", 1)[1])
        except ValueError:
            logger.warning("capture: skipping folder with a bad date: %s", folder)
            continue
        if (first is not None and day < first) or (last is not None and day > last):
            continue
        for file in sorted(fs.glob(f"{folder}/*.parquet")):
            if file.rsplit("/", 1)[-1].startswith("."):
                continue
            try:
                with fs.open(file, "rb") as handle:
                    frames.append(pd.read_parquet(handle))
            except Exception as error:  # noqa: BLE001 - any unreadable file is skipped
                logger.warning("capture: skipping unreadable file %s: %s", file, error)
    if not frames:
        return pd.DataFrame()
    return _plain(pd.concat(frames, ignore_index=True))


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Strings as object columns with None for missing (pandas 3 reads them as ``str``)."""
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_string_dtype(values) or values.dtype == object:
            frame[column] = values.astype(object).where(values.notna(), None)
    return frame


def read_window(
    path: str | Path,
    settings: Settings,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    """The predictions served in [since, until) as one frame, labels joined by request id.

    The label column is named ``settings.data.target`` and is missing (None) where no
    label came back. Labels are read from ``since`` on with no upper bound: they arrive
    after the prediction. A request id labeled twice keeps its latest label.
    """
    data = settings.data
    predictions = read_kind(path, PREDICTIONS, since, until)
    if predictions.empty:
        columns = [REQUEST_ID, TIMESTAMP, MODEL_NAME, MODEL_VERSION, *data.features.all]
        return pd.DataFrame(columns=[*columns, PREDICTION, data.target])
    stamps = predictions[TIMESTAMP]
    keep = pd.Series(True, index=predictions.index)
    if since is not None:
        keep &= stamps >= pd.Timestamp(_utc(since))
    if until is not None:
        keep &= stamps < pd.Timestamp(_utc(until))
    predictions = predictions[keep]
    labels = read_kind(path, LABELS, since, None)
    if labels.empty:
        predictions[data.target] = None
    else:
        latest = labels.sort_values(TIMESTAMP).drop_duplicates(REQUEST_ID, keep="last")
        joined = latest.set_index(REQUEST_ID)[LABEL].rename(data.target)
        predictions = predictions.join(joined, on=REQUEST_ID)
        predictions[data.target] = predictions[data.target].astype(object)
        predictions[data.target] = predictions[data.target].where(
            predictions[data.target].notna(), None
        )
    for column in data.features.numerical:
        if column in predictions:
            predictions[column] = predictions[column].astype("float64")
    return predictions.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)
