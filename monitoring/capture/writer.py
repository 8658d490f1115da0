"""The capture writer: appends served rows and labels to write-ahead segments on the
request path, and compacts sealed segments into the Parquet store off it.

A served row is appended to its segment, as one Arrow record batch per model call, before
its response is sent (no fsync: a process crash loses nothing, a power cut may). A
background thread compacts segments into Parquet files named after the segment, so a
segment compacted twice (a crash between its Parquet and its deletion) is stored once.
At start, segments that a dead process left are
recovered the same way; a ``flock`` on each live segment keeps other processes off it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from monitoring.capture.frames import ARROW_MIN_ROWS, records_record_batch, scored_record_batch
from monitoring.capture.schema import KINDS, check_kind, scored_columns, storable_table
from monitoring.capture.segments import Segment
from monitoring.capture.store import capture_path, probe, write_table
from monitoring.capture.wal import Chunk, ScoredBatch, scored_line
from pipeline.schema import INTERVAL_COLUMNS, PREDICTION
from pipeline.settings import Settings

logger = logging.getLogger(__name__)


class CaptureWriter:
    """Appends every row to a local write-ahead segment, then compacts segments into Parquet.

    ``add`` (on the request path, before the response leaves) turns a list of records or,
    cheaper for a served batch, a :class:`ScoredBatch` into one Arrow record batch and
    appends it, framed, to the kind's open segment under ``segments``: one unbuffered
    write, no fsync. A
    background thread seals the open segments once one holds ``flush_rows`` rows or
    ``flush_seconds`` have passed, and compacts each sealed segment into Parquet under
    ``path`` (files named after the segment), then deletes it. ``start`` first recovers
    the segments a crashed process left: each is locked, compacted and deleted by one
    process only, and a segment whose Parquet already exists is only deleted, so every
    row lands exactly once.

    Rows appended but not yet in Parquet are ``pending`` (reported through ``on_pending``);
    beyond ``max_pending_rows`` of them a row is dropped (counted through ``on_dropped``
    and logged), as is a row whose append fails (a full or unwritable local disk). A
    failed compaction drops nothing: the segment stays and is retried, and ``healthy`` is
    false until a write succeeds.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        segments: str | Path,
        numerical: Sequence[str] = (),
        max_pending_rows: int = 100_000,
        flush_rows: int = 5_000,
        flush_seconds: float = 5.0,
        on_written: Callable[[str, int], None] | None = None,
        on_dropped: Callable[[str, int], None] | None = None,
        on_pending: Callable[[int], None] | None = None,
        arrow_min_rows: int = ARROW_MIN_ROWS,
    ) -> None:
        self.path = str(path)
        self.arrow_min_rows = arrow_min_rows
        self.segments = Path(segments)
        self._numbers = frozenset(numerical)
        self.max_pending_rows = max_pending_rows
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._on_written = on_written
        self._on_dropped = on_dropped
        self._on_pending = on_pending
        self._open: dict[str, Segment | None] = dict.fromkeys(KINDS)
        self._sealed: list[Segment] = []  # waiting for compaction, still locked
        self._pending = 0
        self._dropped = 0
        self._last_drop_log = 0.0
        self._last_error_log = 0.0
        self._condition = threading.Condition()
        self._compacting = threading.Lock()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.healthy = True

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def dropped(self) -> int:
        return self._dropped

    def start(self) -> CaptureWriter:
        """Recover leftover segments, check the log can be written, start the thread."""
        if self._thread is None:
            self.recover()
            self._check_path()
            self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
            self._thread.start()
        return self

    def _check_path(self) -> None:
        """Probe both folders a served row goes through: the local write-ahead segments
        (checked at start, not found at the first request) and the capture path. Healthy
        only when both can be written, so a request whose append failed cannot make a
        probe of the path alone report ready again."""
        for folder in (self.segments, self.path):
            try:
                probe(folder)
            except Exception as error:  # noqa: BLE001 - any failure means "cannot write"
                if self.healthy:
                    logger.error(
                        "capture: %s cannot be written (%s); not ready until it can: %s",
                        folder,
                        "the write-ahead segments" if folder == self.segments else "the log",
                        error,
                    )
                self.healthy = False
                return
        self.healthy = True

    def recover(self) -> int:
        """Compact the segments that processes which died left behind; return their rows."""
        if not self.segments.is_dir():
            return 0
        claimed = Segment.leftovers(self.segments)
        if not claimed:
            return 0
        logger.info("capture: recovering %d segment(s) left in %s", len(claimed), self.segments)
        with self._condition:
            self._sealed.extend(claimed)
        return self.flush()

    def add(self, kind: str, rows: Chunk) -> int:
        """Append ``rows`` (records or a scored batch) to the segment; return how many.

        The rest are dropped, counted and logged: a full log never slows a request.
        """
        check_kind(kind)
        with self._condition:
            room = 0 if self._closing else max(self.max_pending_rows - self._pending, 0)
            taken = min(len(rows), room)
            self._pending += taken  # reserved now, converted outside the lock
        accepted: Chunk = rows
        if taken < len(rows):
            accepted = rows.head(taken) if isinstance(rows, ScoredBatch) else list(rows[:taken])
        failed = 0
        if taken:
            try:
                record: pa.RecordBatch | bytes
                if isinstance(accepted, ScoredBatch):
                    columns = scored_columns(accepted.feature_names, accepted.proba_columns)
                    if taken < self.arrow_min_rows and not isinstance(accepted.features, Mapping):
                        record = scored_line(accepted)[1]
                    else:
                        record = scored_record_batch(accepted, self._numbers)
                else:
                    columns, record = records_record_batch(kind, accepted, self._numbers)
            except Exception:
                with self._condition:
                    self._pending -= taken
                raise  # a bad row is the caller's bug, not a capture failure
            failed = self._append(kind, columns, record, taken)
        dropped = len(rows) - taken + failed
        if dropped:
            self._dropped += dropped
            self._log_drop(kind, dropped)
            if self._on_dropped is not None:
                self._on_dropped(kind, dropped)
        if self._on_pending is not None:
            self._on_pending(self._pending)
        return taken - failed

    def _append(
        self, kind: str, columns: tuple[str, ...], record: pa.RecordBatch | bytes, rows: int
    ) -> int:
        """Append under the lock; return the rows lost to a failed append (0 or all)."""
        with self._condition:
            segment = self._open[kind]
            try:
                if segment is not None and segment.columns != columns:
                    self._seal(kind)  # other columns (a new model's classes): a new file
                    segment = None
                if segment is None:
                    segment = self._open[kind] = Segment.create(self.segments, kind)
                segment.append(columns, record, rows)
                segment.reserved += rows
            except Exception as error:
                self._pending -= rows
                self.healthy = False
                if segment is not None:  # its tail may be torn: never append after it
                    self._open[kind] = None
                    self._keep(segment)
                self._log_error("could not append to a capture segment in %s: %s", error)
                return rows
            if segment.rows >= self.flush_rows:
                self._condition.notify()
        return 0

    def _keep(self, segment: Segment) -> None:
        if segment.rows:
            self._sealed.append(segment)
        else:
            segment.remove()

    def _seal(self, kind: str) -> None:
        segment = self._open[kind]
        if segment is not None and segment.rows:
            self._open[kind] = None
            self._sealed.append(segment)

    def _log_drop(self, kind: str, dropped: int) -> None:
        now = time.monotonic()
        if now - self._last_drop_log >= 10.0:
            self._last_drop_log = now
            logger.warning(
                "capture: dropped %d %s row(s) (%d pending of at most %d), %d dropped in total",
                dropped,
                kind,
                self._pending,
                self.max_pending_rows,
                self._dropped,
            )

    def _log_error(self, message: str, error: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= 10.0:
            self._last_error_log = now
            logger.error("capture: " + message, self.segments, error)

    def flush(self) -> int:
        """Seal the open segments and compact every sealed one now, on the calling thread;
        return the rows written."""
        written = 0
        with self._compacting:
            with self._condition:
                for kind in KINDS:
                    self._seal(kind)
                todo = list(self._sealed)
            if not todo and not self.healthy:
                self._check_path()  # nothing to write: ask the path itself
            for segment in todo:
                try:
                    rows = self._compact(segment)
                except Exception as error:  # noqa: BLE001 - kept and retried, never lost
                    self.healthy = False
                    self._log_error(
                        f"could not write {len(todo)} segment(s) from %s to {self.path}; they "
                        "are kept and retried: %s",
                        error,
                    )
                    break  # the others would fail the same way
                if not self.healthy:  # the path takes rows again: are the segments fine too?
                    self._check_path()
                written += rows
                with self._condition:
                    self._sealed.remove(segment)
                    self._pending -= segment.reserved
                if self._on_written is not None and rows:
                    self._on_written(segment.kind, rows)
        if self._on_pending is not None:
            self._on_pending(self._pending)
        return written

    def _compact(self, segment: Segment) -> int:
        table = segment.read(self._numbers)
        if table.num_rows:
            write_table(self.path, segment.kind, storable_table(table), name=segment.id)
        segment.remove()
        return int(table.num_rows)

    def _run(self) -> None:
        deadline = time.monotonic() + self.flush_seconds
        while True:
            with self._condition:
                if not (self._full() or self._closing):
                    self._condition.wait(timeout=max(deadline - time.monotonic(), 0.0))
                closing = self._closing
                full = self._full()
            if full or closing or time.monotonic() >= deadline:
                if not closing:  # close() compacts on its own thread, after this one ends
                    self.flush()
                deadline = time.monotonic() + self.flush_seconds
            if closing:
                return

    def _full(self) -> bool:
        return any(s is not None and s.rows >= self.flush_rows for s in self._open.values())

    def close(self, timeout: float = 30.0) -> None:
        """Stop accepting rows and compact everything left; safe to call more than once.

        Segments that cannot be written now stay on disk (unlocked) for the next start.
        """
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.flush()
        with self._condition:
            left, self._sealed = self._sealed, []
        for segment in left:
            segment.release()
        if left:
            logger.error(
                "capture: %d segment(s) could not be written to %s; they stay in %s and are "
                "recovered at the next start",
                len(left),
                self.path,
                self.segments,
            )


def writer_from_settings(settings: Settings, **hooks: Any) -> CaptureWriter:
    """A writer for ``settings.capture``, not started."""
    capture = settings.capture
    numerical = list(settings.data.features.numerical)
    if settings.data.is_regression:  # the prediction and its interval are numbers too
        numerical += [PREDICTION, *INTERVAL_COLUMNS]
    return CaptureWriter(
        capture_path(settings),
        segments=settings.path(capture.segments),
        numerical=numerical,
        max_pending_rows=capture.max_pending_rows,
        flush_rows=capture.flush_rows,
        flush_seconds=capture.flush_seconds,
        **hooks,
    )
