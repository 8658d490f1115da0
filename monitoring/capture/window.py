"""Reading a window of the capture log: the predictions served in [since, until) with the
labels that came back for them, whole (:func:`read_window`) or, for a window too large to
hold, as a seeded sample with the whole window's totals (:func:`read_window_sample`).

Both join labels the one way, :class:`LatestLabels`: a request id labeled twice keeps its
last label, by timestamp and, within one feedback request, in the order sent. A label
whose request id was not served in the window (a late label for an earlier window, or an
id never served: feedback is open without a token) joins nothing; such labels are counted
(``labels_unjoined``) and dropped. When the log holds more label rows than the window has
predictions, the window's request ids are read first and each chunk of labels is cut to
them as it is read, so the join holds no more ids than the smaller side: a flood of labels
for unknown ids cannot grow the drift job's memory past its window's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from monitoring.capture.sample import SAMPLE_KEY, Smallest, WindowSample, WindowTotals, smallest
from monitoring.capture.schema import (
    LABEL,
    LABELS,
    PREDICTIONS,
    REQUEST_ID,
    SERVED_COLUMNS,
    TIMESTAMP,
    TIMESTAMP_TYPE,
    as_numbers,
    utc,
)
from monitoring.capture.store import (
    SkippedFile,
    files,
    filesystem,
    plain,
    quarantine,
    read_kind,
)
from pipeline.schema import INTERVAL_COLUMNS, PREDICTION
from pipeline.settings import Settings

logger = logging.getLogger(__name__)

SCAN_ROWS = 1 << 20  # rows handled at once: one hash of the label ids per chunk, not per file


@dataclass(frozen=True)
class LatestLabels:
    """Each labeled request id and its last label: by timestamp, then in the order the
    labels were stored (one feedback request's labels in the order sent)."""

    ids: pa.Array
    values: pa.Array
    rows: np.ndarray  # per id: the label rows stored for it
    dropped: int = 0  # label rows cut before the join: their ids were not served

    @classmethod
    def of(cls, labels: pa.Table, dropped: int = 0) -> LatestLabels:
        """The last label of each request id among ``labels`` (rows in the log's order)."""
        table = labels.select([REQUEST_ID, TIMESTAMP, LABEL])
        table = table.set_column(0, REQUEST_ID, table[REQUEST_ID].cast(pa.string()))
        table = table.set_column(2, LABEL, table[LABEL].cast(pa.string()))
        table = table.append_column("__order", pa.array(np.arange(table.num_rows)))
        table = table.sort_by([(TIMESTAMP, "ascending"), ("__order", "ascending")])
        last = pc.ScalarAggregateOptions(skip_nulls=False)
        every = pc.CountOptions(mode="all")
        latest = table.group_by(REQUEST_ID, use_threads=False).aggregate(
            [(LABEL, "last", last), ("__order", "count", every)]
        )
        rows = np.asarray(latest["__order_count"].to_numpy(), dtype="int64")
        ids, values = latest[REQUEST_ID].combine_chunks(), latest[f"{LABEL}_last"]
        return cls(ids, values.combine_chunks(), rows, dropped)

    @classmethod
    def none(cls, dropped: int = 0) -> LatestLabels:
        empty = np.zeros(0, dtype="int64")
        return cls(pa.array([], pa.string()), pa.array([], pa.string()), empty, dropped)

    def unjoined(self, joined: np.ndarray) -> int:
        """The label rows that joined no prediction: those cut before the join and those of
        every id not marked in ``joined`` (one flag per :attr:`ids`)."""
        return self.dropped + int(self.rows[~joined].sum())

    def index(self, request_ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Each request id's position among :attr:`ids`, -1 where no label came back."""
        found = pc.index_in(request_ids, value_set=self.ids)
        return np.asarray(pc.fill_null(found, -1).to_numpy(), dtype="int64")

    def take(self, index: np.ndarray) -> pa.Array:
        """The labels at ``index`` (from :meth:`index`), null where it is -1."""
        return self.values.take(pa.array(index, mask=index < 0))


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
    predictions = read_kind(path, PREDICTIONS, since, until)
    if predictions.empty:
        return empty_window(settings)
    stamps = predictions[TIMESTAMP]
    keep = pd.Series(True, index=predictions.index)
    if since is not None:
        keep &= stamps >= pd.Timestamp(utc(since))
    if until is not None:
        keep &= stamps < pd.Timestamp(utc(until))
    predictions = predictions[keep]
    labels = read_kind(path, LABELS, since, None)
    latest = LatestLabels.none()
    if not labels.empty:
        stored = labels[[REQUEST_ID, TIMESTAMP, LABEL]]
        latest = LatestLabels.of(pa.Table.from_pandas(stored, preserve_index=False))
    ids = pa.array(predictions[REQUEST_ID], pa.string(), from_pandas=True)
    index = latest.index(ids)
    joined = np.zeros(len(latest.ids), dtype=bool)
    joined[index[index >= 0]] = True
    _warn_unjoined(latest.unjoined(joined))
    labeled = latest.take(index).to_pylist()
    predictions[settings.data.target] = pd.Series(labeled, index=predictions.index, dtype=object)
    return _finish(predictions, settings)


def _warn_unjoined(count: int) -> None:
    if count:
        logger.warning(
            "capture: %d label(s) joined no prediction of the window (late labels for an "
            "earlier window, or request ids never served) and were dropped",
            count,
        )


def empty_window(settings: Settings) -> pd.DataFrame:
    """A window without rows, with the columns :func:`read_window` gives."""
    data = settings.data
    return pd.DataFrame(columns=[*SERVED_COLUMNS, *data.features.all, PREDICTION, data.target])


def _finish(predictions: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Plain dtypes: numerical features float64; for a regression task the prediction, its
    interval and the label (stored as its one spelling, ``"4277.5"``) float64 too."""
    numbers = list(settings.data.features.numerical)
    if settings.data.is_regression:
        numbers += [PREDICTION, *INTERVAL_COLUMNS, settings.data.target]
    for column in numbers:
        if column in predictions:
            predictions[column] = as_numbers(predictions[column])
    return predictions.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)


def _schema(fs: Any, root: str, file: str, skipped: list[SkippedFile]) -> pa.Schema | None:
    """The file's schema from its footer; ``None`` (the file quarantined) if unreadable."""
    try:
        with fs.open(file, "rb") as handle:
            return pq.read_schema(handle)
    except Exception as error:  # noqa: BLE001 - any unreadable file is set aside
        skipped.append(quarantine(fs, root, file, error))
        return None


def _scan(
    fs: Any,
    root: str,
    found: list[str],
    window: tuple[datetime | None, datetime | None],
    skipped: list[SkippedFile],
    columns: list[str] | None = None,
) -> Iterator[pa.Table]:
    """The rows of ``found`` in the window [since, until) as tables of about
    :data:`SCAN_ROWS` rows, in file order, with only the log's columns and row groups
    pruned by their timestamp statistics; consecutive files with one schema are read as
    one dataset, each file whole before any of its rows is handed on.

    A file that cannot be read, its footer or any page of it, is moved to the store's
    quarantine (:func:`~monitoring.capture.store.quarantine`) and added to ``skipped``,
    none of its rows judged; the rest of the window is read: one corrupt file must not
    fail every run, nor be half counted. ``columns`` reads only those (the window's ids)."""
    since, until = window
    where = None
    if since is not None:
        where = ds.field(TIMESTAMP) >= pa.scalar(utc(since), TIMESTAMP_TYPE)
    if until is not None:
        before = ds.field(TIMESTAMP) < pa.scalar(utc(until), TIMESTAMP_TYPE)
        where = before if where is None else where & before
    filesystem = None if isinstance(fs, LocalFileSystem) else fs
    groups: list[tuple[pa.Schema, list[str]]] = []
    for file in found:
        schema = _schema(fs, root, file, skipped)
        if schema is None:
            continue
        if groups and groups[-1][0].equals(schema):
            groups[-1][1].append(file)
        else:
            groups.append((schema, [file]))
    pending: list[pa.RecordBatch] = []
    rows = 0
    for schema, group in groups:
        dataset = ds.dataset(group, schema=schema, format="parquet", filesystem=filesystem)
        for fragment in dataset.get_fragments():
            try:
                decoded = _file_batches(fragment, schema, where, columns)
                batches = [b for b in decoded if b.num_rows]
            except Exception as error:  # noqa: BLE001 - any unreadable file is set aside
                skipped.append(quarantine(fs, root, fragment.path, error))
                continue
            pending += batches
            rows += sum(b.num_rows for b in batches)
            if rows >= SCAN_ROWS:
                yield pa.Table.from_batches(pending)
                pending, rows = [], 0
        if pending:  # the next group has another schema
            yield pa.Table.from_batches(pending)
            pending, rows = [], 0


def _file_batches(
    fragment: Any, schema: pa.Schema, where: Any, columns: list[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """One file's rows in the window, decoded in step with the caller.

    No read-ahead, one thread: with its defaults the scanner decoded files faster than the
    loop consumes them and buffered them (Arrow held 1.5 GB on a 10M-row window); read in
    step, the job's peak was 1.2 GB instead of 2.2 GB, in about the same time (the loop's
    own work, not the decoding, is the cost). Both settings are needed: the read-ahead
    runs on I/O threads, apart from ``use_threads``."""
    return iter(
        fragment.to_batches(
            schema=schema,
            columns=columns,
            filter=where,
            batch_size=min(SCAN_ROWS, 1 << 17),
            batch_readahead=0,
            fragment_readahead=0,
            use_threads=False,
        )
    )


def _stored_rows(fs: Any, found: list[str]) -> int:
    """The rows ``found`` hold by their footers (an unreadable one counts none: the scan
    quarantines it)."""
    total = 0
    for file in found:
        try:
            with fs.open(file, "rb") as handle:
                total += pq.read_metadata(handle).num_rows
        except Exception:  # noqa: BLE001, S112 - the scan that reads it sets it aside
            continue
    return total


def _served_ids(
    fs: Any,
    root: str,
    found: list[str],
    window: tuple[datetime | None, datetime | None],
    skipped: list[SkippedFile],
) -> pa.Array | None:
    """The request ids served in the window, read only when the log holds more label rows
    than ``found`` (the window's prediction files) hold rows; ``None`` otherwise. A file
    unreadable here is set aside as the window's scan would (added to ``skipped``)."""
    since = window[0]
    if _stored_rows(fs, files(fs, root, LABELS, since, None)) <= _stored_rows(fs, found):
        return None
    chunks = [
        table[REQUEST_ID].cast(pa.string())
        for table in _scan(fs, root, found, window, skipped, [REQUEST_ID])
    ]
    return pa.chunked_array(chunks, pa.string()).combine_chunks()


def _streamed_labels(
    fs: Any,
    root: str,
    since: datetime | None,
    skipped: list[SkippedFile],
    served: pa.Array | None = None,
) -> LatestLabels:
    """The latest labels from ``since`` on, read by the scan (files of any schema); with
    ``served``, each chunk is cut to those ids as it is read and the rest counted."""
    stored = pa.schema(
        [(REQUEST_ID, pa.string()), (TIMESTAMP, TIMESTAMP_TYPE), (LABEL, pa.string())]
    )
    found = files(fs, root, LABELS, since, None)
    tables, dropped = [], 0
    for table in _scan(fs, root, found, (None, None), skipped):
        chunk = table.select([REQUEST_ID, TIMESTAMP, LABEL]).cast(stored)
        if served is not None:
            kept = chunk.filter(pc.is_in(chunk[REQUEST_ID], value_set=served))
            dropped += chunk.num_rows - kept.num_rows
            chunk = kept
        tables.append(chunk)
    if not tables:
        return LatestLabels.none(dropped)
    return LatestLabels.of(pa.concat_tables(tables), dropped)


def read_window_sample(
    path: str | Path,
    settings: Settings,
    rows: int,
    seed: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> WindowSample:
    """:func:`read_window` for a window of any size: a seeded uniform sample of ``rows``
    rows and one of ``rows`` labeled rows, with the whole window's totals, read in one
    streaming pass (memory bounded by the sample and :data:`SCAN_ROWS`, not the window)."""
    data = settings.data
    fs, root = filesystem(path)
    skipped: list[SkippedFile] = []
    found = files(fs, root, PREDICTIONS, since, until)
    served = _served_ids(fs, root, found, (since, until), skipped)
    latest = _streamed_labels(fs, root, since, skipped, served)
    found = [file for file in found if file not in {gone.path for gone in skipped}]
    joined = np.zeros(len(latest.ids), dtype=bool)
    rng = np.random.default_rng(seed)
    totals = WindowTotals(missing=dict.fromkeys(data.features.all, 0))
    current, labeled = Smallest(rows), Smallest(rows)
    for table in _scan(fs, root, found, (since, until), skipped):
        keys = rng.random(table.num_rows)
        index = latest.index(table[REQUEST_ID])
        has_label = np.flatnonzero(index >= 0)
        joined[index[has_label]] = True
        totals.add(table, data.features.all, latest.take(index), has_label)
        if data.target in table.column_names:
            table = table.drop_columns([data.target])
        for keep, into in (
            (smallest(keys, rows), current),
            (has_label[smallest(keys[has_label], rows)], labeled),
        ):
            taken = table.take(keep).append_column(data.target, latest.take(index[keep]))
            into.add(taken.append_column(SAMPLE_KEY, pa.array(keys[keep])))
    frames = [part.frame() for part in (current, labeled)]
    shaped = [empty_window(settings) if f is None else _finish(plain(f), settings) for f in frames]
    unjoined = latest.unjoined(joined)
    _warn_unjoined(unjoined)
    return WindowSample(shaped[0], shaped[1], totals, skipped, labels_unjoined=unjoined)
