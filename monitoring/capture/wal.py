"""Write-ahead lines: a served batch or a list of records as one JSON line, and back.

A model call of fewer than ``frames.ARROW_MIN_ROWS`` rows is appended as one line
(:func:`scored_line`) in a ``J`` frame of its segment, where a record batch would cost
more; segments of an older version (``<kind>-<id>.jsonl``) are JSON lines throughout
(:func:`records_line` wrote their records). Compaction turns whole lines back into one
Arrow table (:func:`segment_table`), by Arrow's JSON reader when it can
(:func:`scored_lines_table`), else line by line (:func:`lines_table`). The records'
checks (:func:`checked_records`) and the column types (:func:`column_array`) are shared
with the record batches of ``frames``, so both store a row alike.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from monitoring.capture.schema import (
    LABEL,
    LABELS,
    MODEL_NAME,
    MODEL_VERSION,
    REQUEST_ID,
    SERVED_COLUMNS,
    TIMESTAMP,
    TIMESTAMP_TYPE,
    Record,
    arrow_type,
    feature_columns,
    numbers_of,
    scored_columns,
    utc,
)
from pipeline.labels import normalize_label
from pipeline.schema import PREDICTION

logger = logging.getLogger(__name__)

_JSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
# The keys of a scored line that are not capture columns.
_T, _ROWS, _PROBA, _PROBA_COLUMNS, _RECORDS = "t", "rows", "proba", "proba_columns", "records"


@dataclass(frozen=True)
class FeatureBlocks:
    """A model call's features as a compiled scoring path holds them, column-major: the
    numerical ones as one float64 block (NaN for a missing value, as sent) and the
    categorical ones as one int32 block of codes into each column's ``categories``
    (``len(categories)`` for a missing value, -1 for a category the model does not know).

    ``dictionary`` is the JSON of ``{column: categories}``, made once per model: a segment's
    schema carries it, and compaction decodes the codes back to the strings the request
    sent. A batch with an unknown category (-1) is written from its rows instead.
    """

    numerical: tuple[str, ...]
    numbers: np.ndarray  # (len(numerical), rows) float64
    categorical: tuple[str, ...]
    codes: np.ndarray  # (len(categorical), rows) int32
    dictionary: bytes

    def head(self, rows: int) -> FeatureBlocks:
        return FeatureBlocks(
            self.numerical,
            self.numbers[:, :rows],
            self.categorical,
            self.codes[:, :rows],
            self.dictionary,
        )


@dataclass(frozen=True)
class ScoredBatch:
    """The rows of one model call as the service already holds them, for ``predictions``.

    Nothing is copied per row on the request path: ``features`` are the request's own row
    mappings and the outputs stay arrays. :func:`scored_line` turns the batch into one
    JSON line with one ``orjson`` call, appended to the write-ahead segment before the
    response leaves; compaction reads such lines back column by column.
    """

    timestamp: datetime
    model_name: str
    model_version: str
    request_ids: Sequence[str]
    # the request's rows (one mapping per row), or its columns (feature -> values, a list
    # or an array per feature, as a column-wise input parser holds them)
    features: Sequence[Record] | Mapping[str, Sequence[Any]]
    predictions: Sequence[Any]  # a label (str) per row, or a regressor's number (float)
    # one row per request row, one column per proba_column: the class probabilities, or
    # a regressor's interval bounds (proba_columns then names interval_lower, interval_upper)
    probabilities: np.ndarray
    proba_columns: Sequence[str]
    # the same features as the compiled scoring path holds them, when it did: written as
    # they are, with no string of a categorical feature built on the request path
    blocks: FeatureBlocks | None = None

    def __len__(self) -> int:
        return len(self.request_ids)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features, in the request's order (the first row's keys)."""
        if isinstance(self.features, Mapping):
            return tuple(self.features)
        return tuple(self.features[0]) if len(self.features) else ()

    def head(self, rows: int) -> ScoredBatch:
        features = self.features
        if isinstance(features, Mapping):
            features = {name: values[:rows] for name, values in features.items()}
        else:
            features = features[:rows]
        return ScoredBatch(
            self.timestamp,
            self.model_name,
            self.model_version,
            self.request_ids[:rows],
            features,
            self.predictions[:rows],
            self.probabilities[:rows],
            self.proba_columns,
            None if self.blocks is None else self.blocks.head(rows),
        )


Chunk = ScoredBatch | Sequence[Record]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


# The timestamps a stored row may have: those pandas can hold (nanoseconds in 64 bits,
# 1677-09-21 to 2262-04-11). A line past them would pass Arrow and fail every reader of
# the window, so it is refused at write and set aside at recovery like any malformed line.
MIN_MICROSECONDS = pd.Timestamp.min.value // 1000 + 1
MAX_MICROSECONDS = pd.Timestamp.max.value // 1000


def in_range(stamp: Any) -> bool:
    """Whether ``stamp`` is a timestamp in microseconds that every reader can hold."""
    return type(stamp) is int and MIN_MICROSECONDS <= stamp <= MAX_MICROSECONDS


def microseconds(value: Any) -> int:
    """Microseconds since the epoch of a datetime or an ISO string (naive ones are UTC)."""
    if not isinstance(value, datetime):
        value = pd.Timestamp(value).to_pydatetime()
    stamp = (utc(value) - _EPOCH) // _MICROSECOND
    if not in_range(stamp):
        raise ValueError(f"a timestamp outside 1677-09-21..2262-04-11: {value!r}")
    return stamp


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value if isinstance(value, str) else str(value)


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def column_array(values: Sequence[Any], kind: pa.DataType) -> pa.Array:
    """Strings unless every value is a number (a column nobody declared numerical);
    numbers with anything else as missing, as ``storable_frame`` does."""
    if kind == pa.string():
        try:
            return pa.array(values, kind)
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            if all(_is_number(v) for v in values):
                return pa.array(values, pa.float64())
            return pa.array([_text(v) for v in values], kind)  # codes sent as numbers
    if kind == TIMESTAMP_TYPE:
        return pa.array(values, pa.int64()).cast(kind)
    try:
        return pa.array(values, kind)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
        return pa.array(numbers.astype("float64"), kind)


def scored_line(batch: ScoredBatch) -> tuple[tuple[str, ...], bytes]:
    """A scored batch as one JSON line, and the columns it fills: the segment's unit.

    One ``orjson`` call over what the service already holds (its request rows, the label
    list, the probability array): nothing per row in Python on the request path. Rows
    are the service's validated ones (floats and strings); types are fixed at compaction.
    """
    if isinstance(batch.features, Mapping):
        raise TypeError("the JSON-line format takes a batch of rows, not of columns")
    columns = scored_columns(batch.feature_names, batch.proba_columns)
    line = orjson.dumps(
        {
            _T: microseconds(batch.timestamp),
            MODEL_NAME: batch.model_name,
            MODEL_VERSION: batch.model_version,
            REQUEST_ID: list(batch.request_ids),
            _ROWS: list(batch.features),
            PREDICTION: list(batch.predictions),
            _PROBA_COLUMNS: list(batch.proba_columns),
            _PROBA: np.ascontiguousarray(batch.probabilities),
        },
        option=_JSON,
    )
    return columns, line


def records_line(
    kind: str, records: Sequence[Record], numerical: frozenset[str]
) -> tuple[tuple[str, ...], bytes]:
    """Records (one mapping per row, the first row's keys) as one JSON line, checked by
    :func:`checked_records`: the previous segment format, kept to write old-format
    segments in tests and benchmarks."""
    columns, rows = checked_records(kind, records, numerical)
    return columns, orjson.dumps({_RECORDS: rows}, option=_JSON)


def checked_records(
    kind: str, records: Sequence[Record], numerical: frozenset[str]
) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """Records (one mapping per row, the first row's keys) checked, and their columns.

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
            row[TIMESTAMP] = microseconds(row[TIMESTAMP])
        if kind == LABELS and LABEL in row:
            row[LABEL] = normalize_label(row[LABEL])
        for column in numbers:
            if not _is_number(row[column]):
                raise TypeError(f"capture: {column} must be a number, got {row[column]!r}")
        rows.append(row)
    return columns, rows


def _line_columns(payload: Mapping[str, Any]) -> tuple[str, ...]:
    """The columns one segment line fills, in the log's order."""
    if _RECORDS in payload:
        return tuple(payload[_RECORDS][0])
    return scored_columns(payload[_ROWS][0], payload[_PROBA_COLUMNS])


# What decoding a line of another shape than an append's raises.
MALFORMED = (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError, AttributeError)


def segment_table(
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
            _line_values(first, columns, feature_columns(columns))
            break
        except MALFORMED:
            columns = None
    if columns is None:  # not one line an append could have written
        if rejected is not None:
            rejected.extend(data.splitlines())
        return pa.table({})
    numerical = numbers_of(columns, numerical)  # a regressor's prediction is a number
    if _ROWS in first:
        try:
            return scored_lines_table(data, columns, numerical)
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
            pass  # a row of other types, or records among the batches: the general way
    return lines_table(data, columns, numerical, rejected)


def _line_values(
    payload: Any, columns: Sequence[str], features: Sequence[str]
) -> dict[str, list[Any]]:
    """One decoded line's values, column by column; raises one of :data:`MALFORMED` for a
    line of another shape than :func:`scored_line` or :func:`records_line` write."""
    if _RECORDS in payload:
        records = payload[_RECORDS]
        if not all(isinstance(row, dict) for row in records):
            raise TypeError("records that are not objects")
        got = {column: [row.get(column) for row in records] for column in columns}
    else:
        size = len(payload[REQUEST_ID])
        rows, proba = payload[_ROWS], payload[_PROBA]
        if not len(rows) == len(payload[PREDICTION]) == len(proba) == size:
            raise ValueError("rows, request ids, predictions and probabilities disagree")
        got = {
            REQUEST_ID: list(payload[REQUEST_ID]),
            TIMESTAMP: [payload[_T]] * size,
            MODEL_NAME: [payload[MODEL_NAME]] * size,
            MODEL_VERSION: [payload[MODEL_VERSION]] * size,
            PREDICTION: list(payload[PREDICTION]),
        }
        for column in features:
            got[column] = [row.get(column) for row in rows]
        for at, column in enumerate(payload[_PROBA_COLUMNS]):
            got[column] = [p[at] for p in proba]
    for stamp in got.get(TIMESTAMP, ()):
        if stamp is not None and not in_range(stamp):
            raise TypeError(f"a timestamp that is not microseconds in range: {stamp!r}")
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
    features = feature_columns(columns)
    for line in data.splitlines():
        try:
            got = _line_values(orjson.loads(line), columns, features)
        except MALFORMED as error:
            logger.warning("capture: leaving out a malformed segment line: %r", error)
            if rejected is not None:
                rejected.append(line)
            continue
        size = len(next(iter(got.values()), ()))
        for column, column_values in values.items():
            column_values.extend(got[column] if column in got else [None] * size)
    arrays = [column_array(values[c], arrow_type(c, numerical)) for c in columns]
    return pa.Table.from_arrays(arrays, names=list(columns))


def scored_lines_table(data: bytes, columns: Sequence[str], numerical: frozenset[str]) -> pa.Table:
    """Lines of :func:`scored_line` read by Arrow's JSON reader against the schema they
    must have; raises if one does not (a row of other types, records among them)."""
    at = columns.index(PREDICTION)
    features, probas = columns[len(SERVED_COLUMNS) : at], columns[at + 1 :]
    rows = pa.struct([(c, arrow_type(c, numerical)) for c in features])
    schema = pa.schema(
        [
            (_T, pa.int64()),
            (MODEL_NAME, pa.string()),
            (MODEL_VERSION, pa.string()),
            (REQUEST_ID, pa.list_(pa.string())),
            (_ROWS, pa.list_(rows)),
            (PREDICTION, pa.list_(arrow_type(PREDICTION, numerical))),
            (_PROBA_COLUMNS, pa.list_(pa.string())),
            (_PROBA, pa.list_(pa.list_(pa.float64()))),
        ]
    )
    lines = pa_json.read_json(
        pa.BufferReader(data),
        read_options=pa_json.ReadOptions(use_threads=False, block_size=max(len(data), 1 << 20)),
        parse_options=pa_json.ParseOptions(
            explicit_schema=schema, unexpected_field_behavior="error"
        ),
    )
    stamps = pc.min_max(lines[_T]).as_py()
    if len(lines) and not all(in_range(stamps[k]) for k in ("min", "max")):
        raise ValueError("a timestamp outside the range every reader holds")
    sizes = pc.list_value_length(lines[REQUEST_ID]).to_numpy()
    flat = pc.list_flatten(lines[_ROWS]).combine_chunks()
    proba = pc.list_flatten(pc.list_flatten(lines[_PROBA])).to_numpy()
    if len(flat) != sizes.sum() or len(proba) != sizes.sum() * len(probas):
        raise ValueError("rows, request ids and probabilities disagree in length")
    proba = proba.reshape(-1, len(probas))
    arrays: list[pa.Array | pa.ChunkedArray] = [
        pc.list_flatten(lines[REQUEST_ID]),
        pa.array(np.repeat(lines[_T].to_numpy(), sizes), pa.int64()).cast(TIMESTAMP_TYPE),
        *(
            pa.array(np.repeat(lines[c].to_numpy(zero_copy_only=False), sizes), pa.string())
            for c in (MODEL_NAME, MODEL_VERSION)
        ),
        *(flat.field(c) for c in features),
        pc.list_flatten(lines[PREDICTION]),
        *(pa.array(proba[:, i]) for i in range(len(probas))),
    ]
    return pa.Table.from_arrays(arrays, names=list(columns))
