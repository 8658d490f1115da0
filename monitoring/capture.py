"""The capture log: what the service predicted and the labels that came back later.

One module owns the format, so the writer (the service) and the readers (the drift
job, tests, notebooks) cannot disagree. Layout under ``capture.path`` (a local folder or
an fsspec URL such as ``s3://bucket/prefix``)::

    predictions/date=YYYY-MM-DD/<segment>.parquet  request_id, timestamp, model_name,
                                                    model_version, <features>, prediction,
                                                    proba_<class>...
    labels/date=YYYY-MM-DD/<segment>.parquet       request_id, timestamp, label

and, on the serving machine's local disk (``capture.segments``, even when ``capture.path``
is on S3), the write-ahead segments::

    <kind>-<segment>.jsonl     JSON lines, one per model call or feedback request,
                               appended before the response leaves

A served row is appended to its segment before its response is sent (no fsync: a process
crash loses nothing, a power cut may). Segments are compacted into Parquet off the request
path, into files named after the segment and written under a hidden temporary name then
renamed, so a visible file is complete and a segment compacted twice (a crash between its
Parquet and its deletion) is stored once. At start, segments that a dead process left are
recovered the same way; a ``flock`` on each live segment keeps other processes off it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from pipeline.labels import normalize_label, normalize_labels
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


def write_frame(
    path: str | Path, kind: str, frame: pd.DataFrame, name: str | None = None
) -> list[str]:
    """:func:`write_table` for a frame already in the log's dtypes (:func:`storable_frame`)."""
    return write_table(path, kind, pa.Table.from_pandas(frame, preserve_index=False), name)


def write_table(path: str | Path, kind: str, table: pa.Table, name: str | None = None) -> list[str]:
    """Write ``table`` as one Parquet file per UTC date; return the final file paths.

    ``name`` (a segment's id) makes the file names deterministic: a day whose file already
    exists is skipped, so writing the same segment twice (a crash between its Parquet and
    its deletion) still stores each row once. A row without a timestamp belongs to no day
    and is left out. A failed write removes its temporary file.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown capture kind {kind!r}, expected one of {KINDS}")
    fs, root = _fs(path)
    written: list[str] = []
    if not table.num_rows:
        return written
    days = pc.floor_temporal(table[TIMESTAMP], unit="day")
    first, last = pc.min(days), pc.max(days)
    # The usual flush holds one day: no filtering, and no copy of the table.
    if first == last and not days.null_count:
        parts = [(first.as_py(), table)]
    else:
        parts = [
            (day, table.filter(pc.equal(days, pa.scalar(day, days.type))))
            for day in sorted(pc.unique(days.drop_null()).to_pylist())
        ]
    for day, part in parts:
        folder = f"{root}/{kind}/date={day:%Y-%m-%d}"
        file = f"{name or uuid.uuid4().hex}.parquet"
        temporary, final = f"{folder}/.{file}.tmp", f"{folder}/{file}"
        if name is not None and fs.exists(final):
            written.append(final)
            continue
        if isinstance(fs, LocalFileSystem):
            # Object stores have no folders, and s3fs's makedirs would create a missing
            # bucket: a mistyped capture.path must fail loudly, not make a new bucket.
            fs.makedirs(folder, exist_ok=True)
        try:
            with fs.open(temporary, "wb") as handle:
                pq.write_table(part, handle, **_parquet_options(part.column_names))
            fs.mv(temporary, final)
        except BaseException:
            _remove_quietly(fs, temporary)
            raise
        written.append(final)
    return written


def _parquet_options(columns: Sequence[str]) -> dict[str, Any]:
    """Dictionary encoding where values repeat (features, model, prediction, label), not
    for request ids, timestamps and probabilities, which seldom do; statistics for the
    timestamp (a window's filter skips row groups by it) and the model's name and version.
    A segment of 5,000 production rows is written a third faster than with pyarrow's
    defaults (2.5 against 3.7 ms) and 9 % smaller (``python -m bench.capture``)."""
    unique = {REQUEST_ID, TIMESTAMP}
    return {
        "use_dictionary": [c for c in columns if c not in unique and not c.startswith("proba_")],
        "write_statistics": [c for c in columns if c in (TIMESTAMP, MODEL_NAME, MODEL_VERSION)],
    }


def _remove_quietly(fs: Any, path: str) -> None:
    try:
        fs.rm(path)
    except Exception:  # noqa: BLE001 - best effort: the error being raised says what failed
        pass


def probe(path: str | Path) -> None:
    """Write and delete a small file under ``path``: raises if the log cannot be written."""
    fs, root = _fs(path)
    fs.makedirs(root, exist_ok=True)
    marker = f"{root}/.probe-{uuid.uuid4().hex}.tmp"
    try:
        with fs.open(marker, "wb") as handle:
            handle.write(b"mlstack capture probe\n")
    finally:
        _remove_quietly(fs, marker)


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


Chunk = ScoredBatch | Sequence[Record]
SEGMENT_SUFFIX = ".jsonl"
LEGACY_SUFFIX = ".arrows"  # Arrow IPC segments of earlier versions: still recovered
REJECTED = "rejected"  # malformed segment lines, kept in the segments folder (not a kind)
_TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
_STORED_TIMESTAMP = pa.timestamp("ns", tz="UTC")  # what pandas wrote: one schema per log
_JSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE


def _arrow_type(column: str, numerical: frozenset[str]) -> pa.DataType:
    if column == TIMESTAMP:
        return _TIMESTAMP_TYPE
    if column in numerical or column.startswith("proba_"):
        return pa.float64()
    return pa.string()


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value if isinstance(value, str) else str(value)


def _column(values: list[Any], kind: pa.DataType) -> pa.Array:
    """Strings unless every value is a number (a column nobody declared numerical);
    numbers with anything else as missing, as :func:`storable_frame` does."""
    if kind == pa.string():
        try:
            return pa.array(values, kind)
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            if all(_is_number(v) for v in values):
                return pa.array(values, pa.float64())
            return pa.array([_text(v) for v in values], kind)  # codes sent as numbers
    if kind == _TIMESTAMP_TYPE:
        return pa.array(values, pa.int64()).cast(kind)
    try:
        return pa.array(values, kind)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
        return pa.array(numbers.astype("float64"), kind)


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _microseconds(value: Any) -> int:
    """Microseconds since the epoch of a datetime or an ISO string (naive ones are UTC)."""
    if not isinstance(value, datetime):
        value = pd.Timestamp(value).to_pydatetime()
    return (_utc(value) - _EPOCH) // _MICROSECOND


def _scored_columns(features: Iterable[str], proba_columns: Iterable[str]) -> tuple[str, ...]:
    """The columns of a scored batch, in the log's order."""
    return (REQUEST_ID, TIMESTAMP, MODEL_NAME, MODEL_VERSION, *features, PREDICTION, *proba_columns)


def scored_line(batch: ScoredBatch) -> tuple[tuple[str, ...], bytes]:
    """A scored batch as one JSON line, and the columns it fills: the segment's unit.

    One ``orjson`` call over what the service already holds (its request rows, the label
    list, the probability array): nothing per row in Python on the request path. Rows
    are the service's validated ones (floats and strings); types are fixed at compaction.
    """
    columns = _scored_columns(batch.features[0] if len(batch) else (), batch.proba_columns)
    line = orjson.dumps(
        {
            "t": _microseconds(batch.timestamp),
            "model_name": batch.model_name,
            "model_version": batch.model_version,
            "request_id": list(batch.request_ids),
            "rows": list(batch.features),
            "prediction": list(batch.predictions),
            "proba_columns": list(batch.proba_columns),
            "proba": np.ascontiguousarray(batch.probabilities),
        },
        option=_JSON,
    )
    return columns, line


def records_line(
    kind: str, records: Sequence[Record], numerical: frozenset[str]
) -> tuple[tuple[str, ...], bytes]:
    """Records (one mapping per row, the first row's keys) as one JSON line.

    Checked here, so a bad row fails its caller and never reaches the segment: a label
    gets its one spelling (``1``, ``1.0`` and ``"1"`` are ``"1"``; a missing one raises),
    a timestamp becomes microseconds (datetimes or ISO strings, naive ones taken as UTC),
    and a numerical column holds numbers or None.
    """
    columns = tuple(records[0])
    numbers = numerical.intersection(columns)
    rows = []
    for record in records:
        row = {column: record.get(column) for column in columns}
        if TIMESTAMP in row:
            row[TIMESTAMP] = _microseconds(row[TIMESTAMP])
        if kind == LABELS and LABEL in row:
            row[LABEL] = normalize_label(row[LABEL])
        for column in numbers:
            if not _is_number(row[column]):
                raise TypeError(f"capture: {column} must be a number, got {row[column]!r}")
        rows.append(row)
    return columns, orjson.dumps({"records": rows}, option=_JSON)


def _line_columns(payload: Mapping[str, Any]) -> tuple[str, ...]:
    """The columns one segment line fills, in the log's order."""
    if "records" in payload:
        return tuple(payload["records"][0])
    return _scored_columns(payload["rows"][0], payload["proba_columns"])


def _json_table(
    data: bytes, numerical: frozenset[str], rejected: list[bytes] | None = None
) -> pa.Table:
    """Whole JSON lines of one segment as a table: Arrow's JSON reader when every line is
    a scored batch with the service's types (no Python per row, and the GIL released),
    else line by line. Every line of a segment fills the same columns: the first line
    of the shape an append writes names them. Lines of no such shape go to ``rejected``."""
    columns: tuple[str, ...] | None = None
    for line in data.splitlines():
        try:
            first = orjson.loads(line)
            columns = _line_columns(first)
            _line_values(first, columns, _features(columns))
            break
        except _MALFORMED:
            columns = None
    if columns is None:  # not one line an append could have written
        if rejected is not None:
            rejected.extend(data.splitlines())
        return pa.table({})
    if "rows" in first:
        try:
            return scored_lines_table(data, columns, numerical)
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
            pass  # a row of other types, or records among the batches: the general way
    return lines_table(data, columns, numerical, rejected)


def _features(columns: Sequence[str]) -> Sequence[str]:
    """The feature columns among a scored segment's columns (none for records)."""
    return columns[4 : columns.index(PREDICTION)] if PREDICTION in columns else ()


# What decoding a line of another shape than an append's raises.
_MALFORMED = (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError, AttributeError)


def _line_values(
    payload: Any, columns: Sequence[str], features: Sequence[str]
) -> dict[str, list[Any]]:
    """One decoded line's values, column by column; raises one of :data:`_MALFORMED` for a
    line of another shape than :func:`scored_line` or :func:`records_line` write."""
    if "records" in payload:
        records = payload["records"]
        if not all(isinstance(row, dict) for row in records):
            raise TypeError("records that are not objects")
        got = {column: [row.get(column) for row in records] for column in columns}
    else:
        size = len(payload[REQUEST_ID])
        rows, proba = payload["rows"], payload["proba"]
        if not len(rows) == len(payload[PREDICTION]) == len(proba) == size:
            raise ValueError("rows, request ids, predictions and probabilities disagree")
        got = {
            REQUEST_ID: list(payload[REQUEST_ID]),
            TIMESTAMP: [payload["t"]] * size,
            MODEL_NAME: [payload[MODEL_NAME]] * size,
            MODEL_VERSION: [payload[MODEL_VERSION]] * size,
            PREDICTION: list(payload[PREDICTION]),
        }
        for column in features:
            got[column] = [row.get(column) for row in rows]
        for at, column in enumerate(payload["proba_columns"]):
            got[column] = [p[at] for p in proba]
    for stamp in got.get(TIMESTAMP, ()):
        if stamp is not None and not (type(stamp) is int and -(2**63) <= stamp < 2**63):
            raise TypeError(f"a timestamp that is not microseconds: {stamp!r}")
    return got


def lines_table(
    data: bytes,
    columns: Sequence[str],
    numerical: frozenset[str],
    rejected: list[bytes] | None = None,
) -> pa.Table:
    """Any whole lines, decoded one by one; each column's type settled over the segment.

    A line of another shape than an append writes (damaged, or valid JSON that is not a
    batch or records) is left out whole, with a warning, and added to ``rejected``: one
    such line must not hold back the rest of its segment forever.
    """
    values: dict[str, list[Any]] = {column: [] for column in columns}
    features = _features(columns)
    for line in data.splitlines():
        try:
            got = _line_values(orjson.loads(line), columns, features)
        except _MALFORMED as error:
            logger.warning("capture: leaving out a malformed segment line: %r", error)
            if rejected is not None:
                rejected.append(line)
            continue
        size = len(next(iter(got.values()), ()))
        for column, column_values in values.items():
            column_values.extend(got[column] if column in got else [None] * size)
    arrays = [_column(values[c], _arrow_type(c, numerical)) for c in columns]
    return pa.Table.from_arrays(arrays, names=list(columns))


def scored_lines_table(data: bytes, columns: Sequence[str], numerical: frozenset[str]) -> pa.Table:
    """Lines of :func:`scored_line` read by Arrow's JSON reader against the schema they
    must have; raises if one does not (a row of other types, records among them)."""
    at = columns.index(PREDICTION)
    features, probas = columns[4:at], columns[at + 1 :]
    rows = pa.struct([(c, _arrow_type(c, numerical)) for c in features])
    schema = pa.schema(
        [
            ("t", pa.int64()),
            (MODEL_NAME, pa.string()),
            (MODEL_VERSION, pa.string()),
            (REQUEST_ID, pa.list_(pa.string())),
            ("rows", pa.list_(rows)),
            (PREDICTION, pa.list_(pa.string())),
            ("proba_columns", pa.list_(pa.string())),
            ("proba", pa.list_(pa.list_(pa.float64()))),
        ]
    )
    lines = pa_json.read_json(
        pa.BufferReader(data),
        read_options=pa_json.ReadOptions(use_threads=False, block_size=max(len(data), 1 << 20)),
        parse_options=pa_json.ParseOptions(
            explicit_schema=schema, unexpected_field_behavior="error"
        ),
    )
    sizes = pc.list_value_length(lines[REQUEST_ID]).to_numpy()
    flat = pc.list_flatten(lines["rows"]).combine_chunks()
    proba = pc.list_flatten(pc.list_flatten(lines["proba"])).to_numpy()
    if len(flat) != sizes.sum() or len(proba) != sizes.sum() * len(probas):
        raise ValueError("rows, request ids and probabilities disagree in length")
    proba = proba.reshape(-1, len(probas))
    arrays: list[pa.Array | pa.ChunkedArray] = [
        pc.list_flatten(lines[REQUEST_ID]),
        pa.array(np.repeat(lines["t"].to_numpy(), sizes), pa.int64()).cast(_TIMESTAMP_TYPE),
        *(
            pa.array(np.repeat(lines[c].to_numpy(zero_copy_only=False), sizes), pa.string())
            for c in (MODEL_NAME, MODEL_VERSION)
        ),
        *(flat.field(c) for c in features),
        pc.list_flatten(lines[PREDICTION]),
        *(pa.array(proba[:, i]) for i in range(len(probas))),
    ]
    return pa.Table.from_arrays(arrays, names=list(columns))


def storable_table(table: pa.Table) -> pa.Table:
    """The log's stored types: timestamps in nanoseconds and strings as large strings, as
    pandas writes them, so files compacted here and frames written with
    :func:`write_frame` share one schema (the drift job reads such files as one dataset)."""
    fields = []
    for column in table.schema:
        kind = column.type
        if pa.types.is_timestamp(kind):
            kind = _STORED_TIMESTAMP
        elif pa.types.is_string(kind):
            kind = pa.large_string()
        fields.append(pa.field(column.name, kind))
    return table.cast(pa.schema(fields))


class Segment:
    """One write-ahead file of one kind, JSON lines, under an exclusive ``flock``.

    The lock says "a live process owns this file": the writer holds it from creation until
    the segment's rows are in Parquet and the file is deleted, and a process that dies
    loses it with its file descriptors, which is how recovery tells leftovers from segments
    being written. Each append is one line (one model call or feedback request) handed to
    the OS in one ``write`` (no fsync): it survives a process crash, not a power cut. A
    crash inside a write leaves a last line without its newline, from a request that was
    never answered: reading leaves it out.
    """

    def __init__(self, kind: str, path: Path, fd: int) -> None:
        self.kind = kind
        self.path = path
        self.fd = fd
        self.rows = 0
        self.reserved = 0  # rows counted in the writer's pending total
        self.columns: tuple[str, ...] | None = None  # what its lines fill

    @property
    def id(self) -> str:
        """The name its Parquet files take: a rerun finds them and writes nothing twice."""
        name = self.path.name.removesuffix(SEGMENT_SUFFIX).removesuffix(LEGACY_SUFFIX)
        return name.split("-", 1)[1]

    @classmethod
    def create(cls, folder: Path, kind: str) -> Segment:
        """A new, locked segment; locked under a hidden name first, so no recovery takes it."""
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{kind}-{uuid.uuid4().hex}{SEGMENT_SUFFIX}"
        hidden = folder / f".{name}.new"
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(hidden, folder / name)
        return cls(kind, folder / name, fd)

    @classmethod
    def claim(cls, path: Path) -> Segment | None:
        """A leftover segment of a process that died, locked; ``None`` if live or gone."""
        kind = path.name.lstrip(".").split("-", 1)[0]
        if kind not in KINDS:
            return None
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(path).st_ino != os.fstat(fd).st_ino:
                raise FileNotFoundError(path)  # recovered and deleted meanwhile
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)
            return None
        return cls(kind, path, fd)

    def append(self, columns: tuple[str, ...], line: bytes, rows: int) -> None:
        self.columns = columns
        self._write(memoryview(line))
        self.rows += rows

    def _write(self, data: memoryview) -> None:
        while data:  # a short write (a full disk) raises on the next call
            data = data[os.write(self.fd, data) :]

    def read(self, numerical: frozenset[str] = frozenset()) -> pa.Table:
        """Every whole line as one table; a torn last one (a crash mid-append, before the
        response was sent) is left out with a warning."""
        data = self.path.read_bytes()
        if self.path.name.endswith(LEGACY_SUFFIX):
            return self._read_legacy(data)
        whole = data[: data.rfind(b"\n") + 1]
        if len(whole) < len(data):
            logger.warning(
                "capture: segment %s ends in a torn write of %d byte(s), from a request "
                "never answered; its whole lines are kept",
                self.path,
                len(data) - len(whole),
            )
        if not whole:
            return pa.table({})
        rejected: list[bytes] = []
        table = _json_table(whole, numerical, rejected)
        if rejected:  # kept beside the segments for a look, never compacted or recovered
            kept = self.path.with_name(f"{REJECTED}-{self.id}{SEGMENT_SUFFIX}")
            kept.write_bytes(b"".join(line + b"\n" for line in rejected))
            logger.error(
                "capture: %d malformed line(s) of segment %s left out of the log, kept in %s",
                len(rejected),
                self.path,
                kept,
            )
        return table

    def _read_legacy(self, data: bytes) -> pa.Table:
        """An Arrow IPC segment of an earlier version: its complete record batches."""
        batches: list[pa.RecordBatch] = []
        if not data:
            return pa.table({})
        try:
            reader = pa.ipc.open_stream(pa.BufferReader(data))
            while True:
                batches.append(reader.read_next_batch())
        except StopIteration:
            pass
        except (pa.ArrowInvalid, OSError) as error:
            logger.warning(
                "capture: segment %s ends in a torn write after %d whole batch(es), from a "
                "request never answered: %s",
                self.path,
                len(batches),
                error,
            )
        return pa.Table.from_batches(batches) if batches else pa.table({})

    def remove(self) -> None:
        """Delete the file, then let go of the lock."""
        self.path.unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        os.close(self.fd)


class CaptureWriter:
    """Appends every row to a local write-ahead segment, then compacts segments into Parquet.

    ``add`` (on the request path, before the response leaves) turns a list of records or,
    cheaper for a served batch, a :class:`ScoredBatch` into one JSON line and appends it
    to the kind's open segment under ``segments``: one unbuffered write, no fsync. A
    background thread seals the open segments once one holds ``flush_rows`` rows or
    ``flush_seconds`` have passed, and compacts each sealed segment into Parquet under
    ``path`` (files named after the segment), then deletes it. ``start`` first recovers
    the segments a crashed process left: each is locked, compacted and deleted by one
    process only, and a segment whose Parquet already exists is only deleted, so every
    row lands exactly once.

    Rows appended but not yet in Parquet are ``pending``; beyond ``queue_rows`` of them a
    row is dropped (counted through ``on_dropped`` and logged), as is a row whose append
    fails (a full or unwritable local disk). A failed compaction drops nothing: the
    segment stays and is retried, and ``healthy`` is false until a write succeeds.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        segments: str | Path,
        numerical: Sequence[str] = (),
        queue_rows: int = 100_000,
        flush_rows: int = 5_000,
        flush_seconds: float = 5.0,
        on_written: Callable[[str, int], None] | None = None,
        on_dropped: Callable[[str, int], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
    ) -> None:
        self.path = str(path)
        self.segments = Path(segments)
        self._numbers = frozenset(numerical)
        self.queue_rows = queue_rows
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._on_written = on_written
        self._on_dropped = on_dropped
        self._on_queue = on_queue
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
        try:
            probe(self.path)
        except Exception as error:  # noqa: BLE001 - any failure means "cannot write"
            if self.healthy:
                logger.error("capture: %s cannot be written: %s", self.path, error)
            self.healthy = False
        else:
            self.healthy = True

    def recover(self) -> int:
        """Compact the segments that processes which died left behind; return their rows."""
        if not self.segments.is_dir():
            return 0
        claimed = []
        for path in sorted(self.segments.iterdir()):
            if path.name.startswith("."):
                if path.name.endswith(".new") and (orphan := Segment.claim(path)) is not None:
                    orphan.remove()  # created, never named: it holds no row
                continue
            suffixes = (SEGMENT_SUFFIX, LEGACY_SUFFIX)
            if path.name.endswith(suffixes) and (found := Segment.claim(path)) is not None:
                claimed.append(found)
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
        if kind not in KINDS:
            raise ValueError(f"unknown capture kind {kind!r}, expected one of {KINDS}")
        with self._condition:
            room = 0 if self._closing else max(self.queue_rows - self._pending, 0)
            taken = min(len(rows), room)
            self._pending += taken  # reserved now, converted outside the lock
        accepted: Chunk = rows
        if taken < len(rows):
            accepted = rows.head(taken) if isinstance(rows, ScoredBatch) else list(rows[:taken])
        failed = 0
        if taken:
            try:
                if isinstance(accepted, ScoredBatch):
                    columns, line = scored_line(accepted)
                else:
                    columns, line = records_line(kind, accepted, self._numbers)
            except Exception:
                with self._condition:
                    self._pending -= taken
                raise  # a bad row is the caller's bug, not a capture failure
            failed = self._append(kind, columns, line, taken)
        dropped = len(rows) - taken + failed
        if dropped:
            self._dropped += dropped
            self._log_drop(kind, dropped)
            if self._on_dropped is not None:
                self._on_dropped(kind, dropped)
        if self._on_queue is not None:
            self._on_queue(self._pending)
        return taken - failed

    def _append(self, kind: str, columns: tuple[str, ...], line: bytes, rows: int) -> int:
        """Append under the lock; return the rows lost to a failed append (0 or all)."""
        with self._condition:
            segment = self._open[kind]
            try:
                if segment is not None and segment.columns != columns:
                    self._seal(kind)  # other columns (a new model's classes): a new file
                    segment = None
                if segment is None:
                    segment = self._open[kind] = Segment.create(self.segments, kind)
                segment.append(columns, line, rows)
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
                self.queue_rows,
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
                self.healthy = True
                written += rows
                with self._condition:
                    self._sealed.remove(segment)
                    self._pending -= segment.reserved
                if self._on_written is not None and rows:
                    self._on_written(segment.kind, rows)
        if self._on_queue is not None:
            self._on_queue(self._pending)
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
    return CaptureWriter(
        capture_path(settings),
        segments=settings.path(capture.segments),
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


def _files(
    fs: Any, root: str, kind: str, since: datetime | None, until: datetime | None
) -> list[str]:
    """The visible Parquet files of one kind whose date partition overlaps [since, until]."""
    first, last = _day(since), _day(until)
    files = []
    for folder in sorted(fs.glob(f"{root}/{kind}/date=*")):
        try:
            day = date.fromisoformat(folder.rstrip("/").rsplit("date=", 1)[1])
        except ValueError:
            logger.warning("capture: skipping folder with a bad date: %s", folder)
            continue
        if (first is not None and day < first) or (last is not None and day > last):
            continue
        files += [
            file
            for file in sorted(fs.glob(f"{folder}/*.parquet"))
            if not file.rsplit("/", 1)[-1].startswith(".")
        ]
    return files


def read_kind(
    path: str | Path, kind: str, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """Every file of one kind whose date partition overlaps [since, until].

    A file that cannot be read is skipped with a warning naming it, so one corrupt
    file does not hide a whole window.
    """
    fs, root = _fs(path)
    frames = []
    for file in _files(fs, root, kind, since, until):
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
        return _empty_window(settings)
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
        # The last label wins: by timestamp, and in the order sent within one request.
        latest = labels.sort_values(TIMESTAMP, kind="stable").drop_duplicates(
            REQUEST_ID, keep="last"
        )
        joined = latest.set_index(REQUEST_ID)[LABEL].rename(data.target)
        predictions = predictions.join(joined, on=REQUEST_ID)
        predictions[data.target] = predictions[data.target].astype(object)
        predictions[data.target] = predictions[data.target].where(
            predictions[data.target].notna(), None
        )
    return _finish(predictions, settings)


def _empty_window(settings: Settings) -> pd.DataFrame:
    data = settings.data
    columns = [REQUEST_ID, TIMESTAMP, MODEL_NAME, MODEL_VERSION, *data.features.all]
    return pd.DataFrame(columns=[*columns, PREDICTION, data.target])


def _finish(predictions: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    for column in settings.data.features.numerical:
        if column in predictions:
            predictions[column] = predictions[column].astype("float64")
    return predictions.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)


# A window too large to hold is read in one streaming pass, batch by batch with only the
# columns of the log, its row groups pruned by their timestamp statistics. Every row gets a
# uniform random key from one generator seeded by ``data.seed``, in the log's order (files
# sorted by date and name, rows as stored); the ``rows`` smallest keys are the sample (a
# uniform sample without replacement), and the ``rows`` smallest among labeled rows the
# labeled sample. Counts, missing values, model versions and label values are summed over
# every row on the way. The same log and window give the same sample.

SAMPLE_KEY = "__sample_key"
SCAN_ROWS = 1 << 20  # rows handled at once: one hash of the label ids per chunk, not per file


@dataclass
class WindowTotals:
    """What every row of a window says, counted while it is read, not only the sample."""

    rows: int = 0
    labeled: int = 0
    missing: dict[str, int] = field(default_factory=dict)  # per feature: rows without a value
    model_names: set[str] = field(default_factory=set)
    model_versions: set[str] = field(default_factory=set)
    labels: set[str] = field(default_factory=set)  # the joined labels' values


@dataclass
class WindowSample:
    """A window as the drift job judges it: a uniform sample of its rows and one of its
    labeled rows (each every row when there are no more than the sample's size), both
    shaped like :func:`read_window`'s frame, and the totals of the whole window."""

    current: pd.DataFrame
    labeled: pd.DataFrame
    totals: WindowTotals

    @property
    def complete(self) -> bool:
        """Whether the sample is the whole window."""
        return len(self.current) == self.totals.rows


def smallest(keys: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` smallest keys, in position order (all of them if no more)."""
    if len(keys) <= k:
        return np.arange(len(keys))
    return np.sort(np.argpartition(keys, k - 1)[:k])


class _Smallest:
    """The rows with the ``k`` smallest keys seen so far, pruned as they come. Held as Arrow
    tables (a string a few bytes, not a Python object of ~60) and made a pandas frame once,
    at the end. (This did not move the 10M-row window's peak; the scanner's read-ahead in
    :func:`_scan` was that.)"""

    def __init__(self, k: int) -> None:
        self.k = k
        self.parts: list[pa.Table] = []
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        self.parts.append(table)
        self.rows += table.num_rows
        if self.rows > 2 * self.k:
            self._prune()

    def _prune(self) -> None:
        table = pa.concat_tables(self.parts, promote_options="permissive")
        table = table.take(smallest(table[SAMPLE_KEY].to_numpy(), self.k))
        self.parts, self.rows = [table], table.num_rows

    def frame(self) -> pd.DataFrame | None:
        if not self.parts:
            return None
        self._prune()
        frame: pd.DataFrame = self.parts[0].drop_columns([SAMPLE_KEY]).to_pandas()
        return frame


def _schema(fs: Any, file: str) -> pa.Schema | None:
    try:
        with fs.open(file, "rb") as handle:
            return pq.read_schema(handle)
    except Exception as error:  # noqa: BLE001 - any unreadable file is skipped
        logger.warning("capture: skipping unreadable file %s: %s", file, error)
        return None


def _scan(
    fs: Any, files: list[str], since: datetime | None, until: datetime | None
) -> Iterator[pa.Table]:
    """The rows of ``files`` in [since, until) as tables of about :data:`SCAN_ROWS` rows,
    in file order; consecutive files with one schema are read as one dataset."""
    where = None
    if since is not None:
        where = ds.field(TIMESTAMP) >= pa.scalar(_utc(since), _TIMESTAMP_TYPE)
    if until is not None:
        before = ds.field(TIMESTAMP) < pa.scalar(_utc(until), _TIMESTAMP_TYPE)
        where = before if where is None else where & before
    filesystem = None if isinstance(fs, LocalFileSystem) else fs
    groups: list[tuple[pa.Schema, list[str]]] = []
    for file in files:
        schema = _schema(fs, file)
        if schema is None:
            continue
        if groups and groups[-1][0].equals(schema):
            groups[-1][1].append(file)
        else:
            groups.append((schema, [file]))
    for schema, group in groups:
        dataset = ds.dataset(group, schema=schema, format="parquet", filesystem=filesystem)
        # No read-ahead, one thread: with its defaults the scanner decoded files faster than
        # the loop below consumes them and buffered them (Arrow held 1.5 GB on a 10M-row
        # window); read in step, the job's peak was 1.2 GB instead of 2.2 GB, in about the
        # same time (the loop's own work, not the decoding, is the cost). Both settings are
        # needed: the read-ahead runs on I/O threads, apart from ``use_threads``.
        scanner = dataset.scanner(
            filter=where,
            batch_size=min(SCAN_ROWS, 1 << 17),
            batch_readahead=0,
            fragment_readahead=0,
            use_threads=False,
        )
        pending: list[pa.RecordBatch] = []
        rows = 0
        for batch in scanner.to_batches():
            if batch.num_rows:
                pending.append(batch)
                rows += batch.num_rows
            if rows >= SCAN_ROWS:
                yield pa.Table.from_batches(pending, schema=scanner.projected_schema)
                pending, rows = [], 0
        if pending:
            yield pa.Table.from_batches(pending, schema=scanner.projected_schema)


def _latest_labels(fs: Any, root: str, since: datetime | None) -> tuple[pa.Array, pa.Array]:
    """Request ids and their latest label (by timestamp, then in the order sent)."""
    tables = [
        table.select([REQUEST_ID, TIMESTAMP, LABEL]).cast(
            pa.schema(
                [(REQUEST_ID, pa.string()), (TIMESTAMP, _TIMESTAMP_TYPE), (LABEL, pa.string())]
            )
        )
        for table in _scan(fs, _files(fs, root, LABELS, since, None), None, None)
    ]
    if not tables:
        return pa.array([], pa.string()), pa.array([], pa.string())
    table = pa.concat_tables(tables)
    table = table.append_column("__order", pa.array(np.arange(table.num_rows)))
    table = table.sort_by([(TIMESTAMP, "ascending"), ("__order", "ascending")])
    last = pc.ScalarAggregateOptions(skip_nulls=False)
    latest = table.group_by(REQUEST_ID, use_threads=False).aggregate([(LABEL, "last", last)])
    return latest[REQUEST_ID].combine_chunks(), latest[f"{LABEL}_last"].combine_chunks()


def _missing(values: pa.ChunkedArray) -> int:
    count = values.null_count
    if pa.types.is_floating(values.type):
        count += int(pc.sum(pc.is_nan(values)).as_py() or 0)
    return int(count)


def _distinct(table: pa.Table, column: str) -> set[str]:
    if column not in table.column_names:
        return set()
    return {str(v) for v in pc.unique(table[column].drop_null()).to_pylist()}


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
    features = data.features.all
    fs, root = _fs(path)
    label_ids, label_values = _latest_labels(fs, root, since)
    rng = np.random.default_rng(seed)
    totals = WindowTotals(missing=dict.fromkeys(features, 0))
    current, labeled = _Smallest(rows), _Smallest(rows)
    for table in _scan(fs, _files(fs, root, PREDICTIONS, since, until), since, until):
        size = table.num_rows
        keys = rng.random(size)
        totals.rows += size
        for column in features:
            present = column in table.column_names
            totals.missing[column] += _missing(table[column]) if present else size
        totals.model_names |= _distinct(table, MODEL_NAME)
        totals.model_versions |= _distinct(table, MODEL_VERSION)
        found = pc.index_in(table[REQUEST_ID], value_set=label_ids)
        index = pc.fill_null(found, -1).to_numpy().astype("int64")
        has_label = np.flatnonzero(index >= 0)
        totals.labeled += len(has_label)
        totals.labels |= _distinct(pa.table({LABEL: label_values.take(index[has_label])}), LABEL)
        for keep, into in (
            (smallest(keys, rows), current),
            (has_label[smallest(keys[has_label], rows)], labeled),
        ):
            taken = table.take(keep)
            if data.target in taken.column_names:
                taken = taken.drop_columns([data.target])
            found_labels = label_values.take(pa.array(index[keep], mask=index[keep] < 0))
            taken = taken.append_column(data.target, found_labels)
            into.add(taken.append_column(SAMPLE_KEY, pa.array(keys[keep])))
    frames = [part.frame() for part in (current, labeled)]
    shaped = [
        _empty_window(settings) if f is None else _finish(_plain(f), settings) for f in frames
    ]
    return WindowSample(current=shaped[0], labeled=shaped[1], totals=totals)


def sample_frame(frame: pd.DataFrame, settings: Settings, rows: int, seed: int) -> WindowSample:
    """The same sample out of a frame already in memory (``--current FILE``): the same keys
    in the frame's order, so a log of one time-ordered file gives the rows
    :func:`read_window_sample` gives."""
    data = settings.data
    keys = np.random.default_rng(seed).random(len(frame))
    target = frame[data.target] if data.target in frame else pd.Series(None, index=frame.index)
    has_label = np.flatnonzero(target.notna().to_numpy())
    totals = WindowTotals(
        rows=len(frame),
        labeled=len(has_label),
        missing={
            c: int(frame[c].isna().sum()) if c in frame else len(frame) for c in data.features.all
        },
        labels={str(v) for v in normalize_labels(target.iloc[has_label]).unique()},
    )
    for column, into in ((MODEL_NAME, totals.model_names), (MODEL_VERSION, totals.model_versions)):
        if column in frame:
            into |= {str(v) for v in frame[column].dropna().unique()}
    current = frame.iloc[smallest(keys, rows)]
    labeled = frame.iloc[has_label[smallest(keys[has_label], rows)]]
    return WindowSample(current=current, labeled=labeled, totals=totals)
