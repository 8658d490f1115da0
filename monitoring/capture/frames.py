"""Write-ahead frames: a served batch or a list of records as one Arrow IPC record batch,
framed so that a torn or damaged one is found exactly, and a segment's frames back as one
table.

A segment (``<kind>-<id>.wal``) is :data:`MAGIC`, then frames. A frame is a 9-byte header
(its type, ``S``, ``B`` or ``J``; the payload's length; the CRC-32 of type and payload,
both little-endian ``uint32``) and its payload: for ``S``, an Arrow IPC schema message;
for ``B``, an Arrow IPC record batch message of the last schema before it; for ``J``, one
JSON line (``wal.scored_line``) of a model call of fewer than :data:`ARROW_MIN_ROWS` rows.
A schema frame is written only when a batch's schema differs from the segment's last one
(the first batch, or a caller's row of other types), in the same ``write`` as its batch.

The request path builds one record batch per model call with the log's columns
(:func:`scored_batch_arrays`): every string of the batch (request ids, model name and
version, categorical features, predictions) in one ``pa.array`` call and every number
(numerical features, probabilities) in one numpy matrix, each column a zero-copy slice of
them, so the cost of a call is a few Arrow calls whatever its columns. Rows that do not
fit the log's types (a category sent as a number by a caller other than the service,
text in a numerical column) take the column-by-column way of the JSON reader
(``wal.column_array``) instead, so both formats store them alike. Compaction
(:func:`frames_table`) checks each frame's CRC, joins consecutive batches of one schema
into an IPC stream and reads it in one call (no text is parsed), and consecutive JSON
lines with Arrow's JSON reader, in the segment's order.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from monitoring.capture.schema import (
    MODEL_NAME,
    MODEL_VERSION,
    REQUEST_ID,
    TIMESTAMP,
    TIMESTAMP_TYPE,
    Record,
    arrow_type,
    numbers_of,
    scored_columns,
)
from monitoring.capture.wal import (
    MAX_MICROSECONDS,
    MIN_MICROSECONDS,
    FeatureBlocks,
    ScoredBatch,
    checked_records,
    column_array,
    microseconds,
    segment_table,
)
from pipeline.schema import PREDICTION

logger = logging.getLogger(__name__)

MAGIC = b"MLSTACK-WAL-ARROW-1\n"  # the first bytes of every segment of this format
SCHEMA, BATCH, JSON = b"S", b"B", b"J"
HEADER = struct.Struct("<cII")  # type, payload length, payload crc32
# The schema metadata key of a batch written from feature blocks: the JSON of
# ``{column: categories}``, each such column holding int32 codes into its categories.
CATEGORIES = b"mlstack.categories"
_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # the IPC stream's end-of-stream marker
# Model calls of fewer rows are written as one JSON line (``wal.scored_line``) in a ``J``
# frame: for them a record batch's fixed cost per column, on the request path and again at
# compaction, outweighs parsing their text (``bench.capture``, docs/benchmarks.md).
ARROW_MIN_ROWS = 32


def checksum(kind: bytes, payload: Any) -> int:
    """The CRC-32 of a frame's type and payload."""
    return zlib.crc32(payload, zlib.crc32(kind))


def frame(kind: bytes, payload: Any) -> bytes:
    """One frame: header and payload (bytes or an Arrow buffer)."""
    view = memoryview(payload)
    return b"".join((HEADER.pack(kind, view.nbytes, checksum(kind, view)), view))


def _values(features: Sequence[Record] | Mapping[str, Sequence[Any]], names: Sequence[str]) -> Any:
    """The values of the ``names`` features, column after column, as one flat iterable."""
    if isinstance(features, Mapping):
        return chain.from_iterable(features[name] for name in names)
    if len(names) == 1:
        return [row[names[0]] for row in features]
    return chain.from_iterable(zip(*map(itemgetter(*names), features), strict=True))


def _blocks(batch: ScoredBatch, numbers: frozenset[str]) -> FeatureBlocks | None:
    """The batch's feature blocks, if they hold exactly its features, as the log types
    them, and no category the model does not know (those are written from the rows)."""
    blocks = batch.blocks
    if blocks is None or not blocks.dictionary:
        return None
    features = batch.feature_names
    if set(blocks.numerical) != numbers.intersection(features):
        return None
    if len(blocks.numerical) + len(blocks.categorical) != len(features):
        return None
    if set(blocks.categorical) | set(blocks.numerical) != set(features):
        return None
    if blocks.codes.size and int(blocks.codes.min()) < 0:
        return None
    return blocks


def scored_batch_arrays(batch: ScoredBatch, numerical: frozenset[str]) -> pa.RecordBatch:
    """A scored batch as one record batch with the log's columns, in a few Arrow calls.

    With feature blocks (:func:`_blocks`), the numbers come from their float64 block and
    each categorical column is a zero-copy slice of their int32 codes, the schema carrying
    the categories (:data:`CATEGORIES`); else from the rows. Raises ``TypeError``,
    ``ValueError``, ``KeyError`` or an Arrow error for rows of other types than the log's
    or of missing keys (:func:`scored_record_batch` then takes the column-by-column way).
    Long because the two sources (blocks, rows) share the metadata and output columns.
    """
    size = len(batch)
    features = batch.feature_names
    columns = scored_columns(features, batch.proba_columns)
    numbers = numbers_of(columns, numerical)
    blocks = _blocks(batch, numbers)
    coded = blocks.categorical if blocks is not None else ()
    texts = [c for c in features if c not in numbers and c not in coded]
    values = [c for c in features if c in numbers]
    text_prediction = PREDICTION not in numbers
    strings: list[Any] = list(batch.request_ids)
    strings += [batch.model_name] * size
    strings += [batch.model_version] * size
    strings.extend(_values(batch.features, texts) if texts else ())
    if text_prediction:
        strings.extend(batch.predictions)
    text = pa.array(strings, pa.string())
    if len(text) != size * (3 + len(texts) + text_prediction):
        raise ValueError("rows, request ids and predictions disagree in length")
    matrix = np.empty((len(values) + (not text_prediction) + len(batch.proba_columns), size))
    if blocks is not None:
        if values:
            matrix[: len(values)] = blocks.numbers[[blocks.numerical.index(c) for c in values]]
        code = pa.array(blocks.codes.ravel())
    elif values:
        flat = np.array(list(_values(batch.features, values)), np.float64)  # None is NaN
        matrix[: len(values)] = flat.reshape(len(values), size)
    at = len(values)
    if not text_prediction:
        matrix[at] = batch.predictions
        at += 1
    matrix[at:] = np.asarray(batch.probabilities, np.float64).reshape(size, -1).T
    number = pa.array(matrix.ravel(), from_pandas=True)  # NaN (a None) is missing
    stamp = np.full(size, microseconds(batch.timestamp), np.int64)
    arrays: list[pa.Array] = [
        text.slice(0, size),
        pa.Array.from_buffers(TIMESTAMP_TYPE, size, [None, pa.py_buffer(stamp)]),
        text.slice(size, size),
        text.slice(2 * size, size),
    ]
    position = {c: 3 + i for i, c in enumerate(texts)}
    position.update({c: i for i, c in enumerate(values)})
    position.update({c: i for i, c in enumerate(coded)})
    for column in features:
        source = number if column in numbers else code if column in coded else text
        arrays.append(source.slice(position[column] * size, size))
    if text_prediction:
        arrays.append(text.slice((3 + len(texts)) * size, size))
    else:
        arrays.append(number.slice(len(values) * size, size))
    start = at * size
    arrays += [number.slice(start + i * size, size) for i in range(len(batch.proba_columns))]
    metadata = {CATEGORIES: blocks.dictionary} if coded and blocks is not None else None
    return pa.RecordBatch.from_arrays(arrays, names=list(columns), metadata=metadata)


def scored_record_batch(batch: ScoredBatch, numerical: frozenset[str]) -> pa.RecordBatch:
    """A scored batch as one record batch with the log's columns; rows of other types than
    the log's (not the service's) column by column, as the JSON reader stores them."""
    try:
        return scored_batch_arrays(batch, numerical)
    except (TypeError, ValueError, KeyError, pa.ArrowInvalid, pa.ArrowTypeError):
        return scored_batch_by_column(batch, numerical)


def scored_batch_by_column(batch: ScoredBatch, numerical: frozenset[str]) -> pa.RecordBatch:
    """A scored batch as one record batch, column by column, each column's type settled
    as the JSON reader settles it (``wal.column_array``): the way for any rows."""
    columns = scored_columns(batch.feature_names, batch.proba_columns)
    numbers = numbers_of(columns, numerical)
    size = len(batch)
    if not len(batch.predictions) == len(batch.probabilities) == size:
        raise ValueError("capture: request ids, predictions and probabilities disagree")
    got: dict[str, Any] = {
        REQUEST_ID: list(batch.request_ids),
        TIMESTAMP: [microseconds(batch.timestamp)] * size,
        MODEL_NAME: [batch.model_name] * size,
        MODEL_VERSION: [batch.model_version] * size,
        PREDICTION: list(batch.predictions),
    }
    features = batch.features
    for column in batch.feature_names:
        if isinstance(features, Mapping):
            got[column] = list(features[column])
        else:
            got[column] = [row.get(column) for row in features]
        if len(got[column]) != size:
            raise ValueError(f"capture: {column} has {len(got[column])} values for {size} rows")
    probabilities = np.asarray(batch.probabilities, np.float64).reshape(size, -1)
    for at, column in enumerate(batch.proba_columns):
        got[column] = probabilities[:, at]
    arrays = [column_array(got[c], arrow_type(c, numbers)) for c in columns]
    return pa.RecordBatch.from_arrays(arrays, names=list(columns))


def records_record_batch(
    kind: str, records: Sequence[Record], numerical: frozenset[str]
) -> tuple[tuple[str, ...], pa.RecordBatch]:
    """Records (one mapping per row, the first row's keys), checked as
    ``wal.checked_records`` checks them, as one record batch, and its columns."""
    columns, rows = checked_records(kind, records, numerical)
    numbers = numbers_of(columns, numerical)
    arrays = [column_array([r[c] for r in rows], arrow_type(c, numbers)) for c in columns]
    return columns, pa.RecordBatch.from_arrays(arrays, names=list(columns))


class Frames:
    """The frames of one segment's bytes after :data:`MAGIC`, checked one by one: runs of
    consecutive payloads read alike (``runs``: record batch messages of one schema, keyed
    by that schema's message, or JSON lines, keyed by :data:`JSON`), in the segment's
    order, and the bytes set aside (``rejected``: damaged frames, batches without a
    schema, a torn tail)."""

    def __init__(self, data: bytes) -> None:
        self.runs: list[tuple[bytes, list[memoryview]]] = []
        self.rejected: list[bytes] = []
        self.torn = 0  # bytes of a torn last frame
        self._split(memoryview(data))

    def _split(self, view: memoryview) -> None:
        at, end = 0, len(view)
        schema: bytes | None = None
        while at < end:
            if end - at < HEADER.size:
                self._torn(view[at:])
                return
            kind, length, crc = HEADER.unpack_from(view, at)
            start, stop = at + HEADER.size, at + HEADER.size + length
            if kind not in (SCHEMA, BATCH, JSON) or stop > end:
                self._torn(view[at:])  # a torn tail, or a header that cannot be trusted
                return
            payload = view[start:stop]
            if checksum(kind, payload) != crc:
                self._reject(view[at:stop], "a frame whose checksum does not match")
                if kind == SCHEMA:  # the batches after it are of a schema not known
                    schema = None
            elif kind == SCHEMA:
                schema = bytes(payload)
            elif kind == JSON:
                self._add(JSON, payload)
            elif schema is None:
                self._reject(view[at:stop], "a batch before any schema")
            else:
                self._add(schema, payload)
            at = stop

    def _add(self, key: bytes, payload: memoryview) -> None:
        if not self.runs or self.runs[-1][0] is not key:
            self.runs.append((key, []))
        self.runs[-1][1].append(payload)

    def _torn(self, tail: memoryview) -> None:
        self.torn = len(tail)
        self.rejected.append(bytes(tail))

    def _reject(self, data: memoryview, why: str) -> None:
        logger.warning("capture: leaving out %s (%d bytes)", why, len(data))
        self.rejected.append(bytes(data))


def _decoded(table: pa.Table) -> pa.Table:
    """The categorical columns of batches written from feature blocks back as the strings
    they code (the categories in the schema's :data:`CATEGORIES`; the code one past them
    is a missing value); raises ``ValueError`` for codes no category has."""
    metadata = table.schema.metadata or {}
    if CATEGORIES not in metadata:
        return table
    categories = orjson.loads(metadata[CATEGORIES])
    for name, known in categories.items():
        at = table.column_names.index(name)  # a column the schema lacks: ValueError
        codes = table[name]
        if not pa.types.is_int32(codes.type):
            raise ValueError(f"{name} holds {codes.type}, not int32 codes")
        low, high = pc.min_max(codes).values()
        if table.num_rows and not 0 <= low.as_py() <= high.as_py() <= len(known):
            raise ValueError(f"{name} holds codes outside its {len(known)} categories")
        dictionary = pa.array([*known, None], pa.string())
        table = table.set_column(at, name, pc.take(dictionary, codes))
    return table.replace_schema_metadata(None)


def _run_table(schema: bytes, batches: list[memoryview]) -> pa.Table:
    """One schema's batch messages read as one IPC stream, in one call."""
    stream = b"".join((schema, *batches, _EOS))
    table = _decoded(pa.ipc.open_stream(pa.py_buffer(stream)).read_all())
    if TIMESTAMP in table.column_names and table.num_rows:
        low, high = pc.min_max(table[TIMESTAMP].cast(pa.int64())).values()
        if not MIN_MICROSECONDS <= low.as_py() <= high.as_py() <= MAX_MICROSECONDS:
            raise ValueError("a timestamp outside the range every reader holds")
    return table


def _unified(tables: list[pa.Table]) -> pa.Table:
    """The tables of a segment's schemas as one, in the first one's column order: a column
    that is text in one and numbers in another (a column nobody declared numerical) is
    text, as the JSON reader stores it; a column some lack is missing there."""
    types: dict[str, set[pa.DataType]] = {}
    for table in tables:
        for field in table.schema:
            types.setdefault(field.name, set()).add(field.type)
    text = {name for name, kinds in types.items() if len(kinds) > 1 and pa.string() in kinds}
    cast = []
    for table in tables:
        for name in text.intersection(table.column_names):
            at = table.column_names.index(name)
            table = table.set_column(at, name, pc.cast(table[name], pa.string()))
        cast.append(table)
    return pa.concat_tables(cast, promote_options="permissive")


# What reading a run of batches that a schema does not read raises.
_UNREADABLE = (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError, AttributeError, OSError)


def _run_tables(schema: bytes, batches: list[memoryview], rejected: list[bytes]) -> list[pa.Table]:
    """A run of batches as one table; if it does not read, each batch on its own: those
    that do not read are set aside (with a warning), the rest kept."""
    try:
        return [_run_table(schema, batches)]
    except _UNREADABLE as error:
        if len(batches) > 1:
            return [t for batch in batches for t in _run_tables(schema, [batch], rejected)]
        logger.warning("capture: leaving out a frame that does not read: %r", error)
        rejected.append(frame(BATCH, batches[0]))
        return []


def frames_table(
    data: bytes, numerical: frozenset[str], rejected: list[bytes]
) -> tuple[pa.Table, int]:
    """A segment's frames (its bytes after :data:`MAGIC`) as one table, in their order,
    and the bytes of a torn last frame (a crash inside an append, from a request never
    answered). Damaged frames, batches a schema does not read, JSON lines of no shape an
    append writes, and the torn tail go to ``rejected``."""
    frames = Frames(data)
    rejected.extend(frames.rejected)
    tables = []
    for schema, batches in frames.runs:
        if schema == JSON:
            lines = segment_table(b"".join(batches), numerical, rejected)
            if lines.num_rows:
                tables.append(lines)
            continue
        tables.extend(_run_tables(schema, batches, rejected))
    if not tables:
        return pa.table({}), frames.torn
    table = tables[0] if len(tables) == 1 else _unified(tables)
    return table.combine_chunks(), frames.torn  # one chunk: casts and Parquet run once
