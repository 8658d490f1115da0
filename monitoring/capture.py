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
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
from fsspec.implementations.local import LocalFileSystem

from pipeline.labels import normalize_label
from pipeline.schema import PREDICTION
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


def storable_frame(kind: str, frame: pd.DataFrame, numerical: Iterable[str] = ()) -> pd.DataFrame:
    """``frame`` with the log's dtypes, column by column (no per-row work but for labels).

    Timestamps are UTC, ``numerical`` and ``proba_*`` columns float64, and strings stay in
    pandas' Arrow-backed ``str`` dtype (missing as NaN), which Parquet takes without
    touching each value again. :func:`read_kind` gives strings back as object columns
    with None for missing: Evidently and the drift job skip nullable extension dtypes.
    """
    frame = frame.copy(deep=False)
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True).astype("datetime64[ns, UTC]")
    numbers = set(numerical)
    for column in frame.columns:
        if column == TIMESTAMP:
            continue
        if column in numbers or column.startswith("proba_"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        elif kind == LABELS and column == LABEL:
            # Element by element: a mixed column (1, 1.0, "1") must still give one spelling.
            labels = [normalize_label(v) for v in frame[LABEL]]
            frame[LABEL] = pd.Series(labels, index=frame.index, dtype="str")
        elif not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].astype("str")
    return frame


def write_frame(path: str | Path, kind: str, frame: pd.DataFrame) -> list[str]:
    """Write ``frame`` as one Parquet file per UTC date; return the final file paths."""
    if kind not in KINDS:
        raise ValueError(f"unknown capture kind {kind!r}, expected one of {KINDS}")
    fs, root = _fs(path)
    written: list[str] = []
    if frame.empty:
        return written
    days = frame[TIMESTAMP].dt.normalize()
    # The usual flush holds one day: no grouping, and no copy of the frame. (NaT equals
    # nothing, so a missing timestamp takes groupby's way, which leaves its row out.)
    one_day = bool(days.eq(days.iloc[0]).all())
    parts = [(days.iloc[0], frame)] if one_day else frame.groupby(days, sort=True)
    for day, part in parts:
        folder = f"{root}/{kind}/date={pd.Timestamp(day):%Y-%m-%d}"
        if isinstance(fs, LocalFileSystem):
            # Object stores have no folders, and s3fs's makedirs would create a missing
            # bucket: a mistyped capture.path must fail loudly, not make a new bucket.
            fs.makedirs(folder, exist_ok=True)
        name = f"{uuid.uuid4().hex}.parquet"
        temporary, final = f"{folder}/.{name}.tmp", f"{folder}/{name}"
        with fs.open(temporary, "wb") as handle:
            part.to_parquet(handle, index=False)
        fs.mv(temporary, final)
        written.append(final)
    return written


@dataclass(frozen=True)
class ScoredBatch:
    """The rows of one model call as the service already holds them, for ``predictions``.

    Nothing is copied per row on the request path: ``features`` are the request's own row
    mappings and the outputs stay arrays. The writer thread turns many batches into one
    frame at flush time, column by column.
    """

    timestamp: datetime
    model_name: str
    model_version: str
    request_ids: Sequence[str]
    features: Sequence[Record]
    predictions: Sequence[str]
    probabilities: np.ndarray  # one row per request row, one column per proba_column
    proba_columns: Sequence[str]

    def __len__(self) -> int:
        return len(self.request_ids)

    def head(self, rows: int) -> ScoredBatch:
        return ScoredBatch(
            self.timestamp,
            self.model_name,
            self.model_version,
            self.request_ids[:rows],
            self.features[:rows],
            self.predictions[:rows],
            self.probabilities[:rows],
            self.proba_columns,
        )


def batches_frame(batches: Sequence[ScoredBatch]) -> pd.DataFrame:
    """Many scored batches as one frame in the log's column order (dtypes not yet fixed)."""
    sizes = [len(batch) for batch in batches]
    columns: dict[str, Any] = {
        REQUEST_ID: [rid for batch in batches for rid in batch.request_ids],
        TIMESTAMP: np.repeat(pd.to_datetime([b.timestamp for b in batches], utc=True), sizes),
        MODEL_NAME: np.repeat([b.model_name for b in batches], sizes),
        MODEL_VERSION: np.repeat([b.model_version for b in batches], sizes),
    }
    features = pd.DataFrame.from_records([row for batch in batches for row in batch.features])
    columns.update({column: features[column] for column in features.columns})
    columns[PREDICTION] = [label for batch in batches for label in batch.predictions]
    probabilities = np.concatenate([batch.probabilities for batch in batches])
    for index, column in enumerate(batches[0].proba_columns):
        columns[column] = probabilities[:, index]
    return pd.DataFrame(columns)


Chunk = ScoredBatch | Sequence[Record]


class CaptureWriter:
    """Buffers rows in memory and writes them from a background thread.

    ``add`` takes a list of records or, cheaper for a served batch, a :class:`ScoredBatch`;
    it never blocks on I/O: it appends under a lock or drops what does not fit in
    ``queue_rows``.
    The thread flushes a kind once it holds ``flush_rows`` rows or ``flush_seconds`` have
    passed, concatenating the chunks and fixing dtypes column by column; ``close``
    flushes everything left.
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
        self._buffers: dict[str, list[Chunk]] = {kind: [] for kind in KINDS}
        self._buffered: dict[str, int] = dict.fromkeys(KINDS, 0)
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

    def add(self, kind: str, rows: Chunk) -> int:
        """Queue ``rows`` (records or a scored batch); return how many were accepted.

        The rest are dropped, counted and logged: a full buffer never slows a request.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown capture kind {kind!r}, expected one of {KINDS}")
        with self._condition:
            room = 0 if self._closing else max(self.queue_rows - self._pending, 0)
            if len(rows) <= room:
                accepted: Chunk = rows
            elif isinstance(rows, ScoredBatch):
                accepted = rows.head(room)
            else:
                accepted = list(rows[:room])
            if len(accepted):
                self._buffers[kind].append(accepted)
                self._buffered[kind] += len(accepted)
            self._pending += len(accepted)
            pending = self._pending
            if self._buffered[kind] >= self.flush_rows:
                self._condition.notify()
        dropped = len(rows) - len(accepted)
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
            batches = {kind: chunks for kind, chunks in self._buffers.items() if chunks}
            self._buffers = {kind: [] for kind in KINDS}
            self._buffered = dict.fromkeys(KINDS, 0)
        for kind, chunks in batches.items():
            self._write(kind, chunks)

    def _frame(self, kind: str, chunks: list[Chunk]) -> pd.DataFrame:
        batches = [chunk for chunk in chunks if isinstance(chunk, ScoredBatch)]
        records = [row for chunk in chunks if not isinstance(chunk, ScoredBatch) for row in chunk]
        frames = [batches_frame(batches)] if batches else []
        if records:
            frames.append(pd.DataFrame.from_records(records))
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        return storable_frame(kind, frame, self.numerical)

    def _write(self, kind: str, chunks: list[Chunk]) -> None:
        rows = sum(len(chunk) for chunk in chunks)
        try:
            write_frame(self.path, kind, self._frame(kind, chunks))
        except Exception:
            # Losing a batch must not kill the writer thread; say loudly what was lost.
            logger.exception("capture: could not write %d %s row(s) to %s", rows, kind, self.path)
            self._dropped += rows
            if self._on_dropped is not None:
                self._on_dropped(kind, rows)
        else:
            if self._on_written is not None:
                self._on_written(kind, rows)
        finally:
            with self._condition:
                self._pending -= rows
                pending = self._pending
            if self._on_queue is not None:
                self._on_queue(pending)

    def _run(self) -> None:
        deadline = time.monotonic() + self.flush_seconds
        while True:
            with self._condition:
                full = max(self._buffered.values()) >= self.flush_rows
                if not (full or self._closing):
                    self._condition.wait(timeout=max(deadline - time.monotonic(), 0.0))
                closing = self._closing
                full = max(self._buffered.values()) >= self.flush_rows
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
