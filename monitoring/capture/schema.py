"""The capture log's row schema: its kinds, its column names and its stored types, once.

Every part of the project that reads or writes the log (the service, the drift job, the
retrain command, the demo) names a capture column through these constants. A stored
``predictions`` row holds ``request_id, timestamp, model_name, model_version, <features>,
prediction, proba_<class>...`` for a classifier, and ``..., <features>, prediction,
interval_lower, interval_upper`` for a regressor (the three float64); a ``labels`` row
``request_id, timestamp, label``, the label always a string (a regressor's true value in
its one spelling, ``pipeline.labels.normalize_label``: readers make it a number with
:func:`as_numbers`). A segment line says which: its output columns are the class
probabilities or the interval's bounds (:func:`numbers_of`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from pipeline.labels import normalize_label
from pipeline.schema import INTERVAL_COLUMNS, INTERVAL_LOWER, PREDICTION, PROBA_PREFIX

PREDICTIONS = "predictions"  # the served rows
LABELS = "labels"  # the labels that came back later through /feedback
KINDS = (PREDICTIONS, LABELS)
# Files the drift job could not read, moved aside under their partition path (never read).
QUARANTINE = "quarantine"
REQUEST_ID = "request_id"
TIMESTAMP = "timestamp"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
LABEL = "label"
# The columns every served row starts with, before its features.
SERVED_COLUMNS = (REQUEST_ID, TIMESTAMP, MODEL_NAME, MODEL_VERSION)

Record = Mapping[str, Any]

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")  # what a segment line holds
STORED_TIMESTAMP = pa.timestamp("ns", tz="UTC")  # what pandas writes: one schema per log


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown capture kind {kind!r}, expected one of {KINDS}")


def utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is taken as UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def scored_columns(features: Iterable[str], proba_columns: Iterable[str]) -> tuple[str, ...]:
    """The columns of served rows, in the log's order."""
    return (*SERVED_COLUMNS, *features, PREDICTION, *proba_columns)


def feature_columns(columns: Sequence[str]) -> Sequence[str]:
    """The feature columns among served rows' columns (none for records)."""
    if PREDICTION not in columns:
        return ()
    return columns[len(SERVED_COLUMNS) : columns.index(PREDICTION)]


def numbers_of(columns: Sequence[str], numerical: Iterable[str]) -> frozenset[str]:
    """The numerical columns of served rows with ``columns``: the declared ``numerical``
    and, when they are a regressor's (they hold the interval's bounds), the prediction
    too, whoever wrote or reads the segment."""
    numbers = frozenset(numerical)
    if INTERVAL_LOWER in columns:
        return numbers | {PREDICTION, *INTERVAL_COLUMNS}
    return numbers


def is_number_column(column: str, numerical: frozenset[str] | set[str]) -> bool:
    """Stored as float64: a declared numerical column, a probability, an interval bound."""
    return column in numerical or column.startswith(PROBA_PREFIX) or column in INTERVAL_COLUMNS


def arrow_type(column: str, numerical: frozenset[str]) -> pa.DataType:
    """A segment column's Arrow type: timestamps, numbers (declared numerical features,
    probabilities, interval bounds) and strings for the rest."""
    if column == TIMESTAMP:
        return TIMESTAMP_TYPE
    if is_number_column(column, numerical):
        return pa.float64()
    return pa.string()


def storable_frame(kind: str, frame: pd.DataFrame, numerical: Iterable[str] = ()) -> pd.DataFrame:
    """``frame`` with the log's dtypes, column by column (no per-row work but for labels).

    Timestamps are UTC, ``numerical``, ``proba_*`` and interval columns float64 (and a
    regressor's prediction, a number already), and strings stay in
    pandas' Arrow-backed ``str`` dtype (missing as NaN), which Parquet takes without
    touching each value again. Reads give strings back as object columns with None for
    missing: Evidently and the drift job skip nullable extension dtypes.
    """
    frame = frame.copy(deep=False)
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True).astype("datetime64[ns, UTC]")
    numbers = set(numbers_of(list(frame.columns), numerical))
    for column in frame.columns:
        if column == TIMESTAMP:
            continue
        if is_number_column(column, numbers):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        elif kind == LABELS and column == LABEL:
            # Element by element: a mixed column (1, 1.0, "1") must still give one spelling.
            labels = [normalize_label(v) for v in frame[LABEL]]
            frame[LABEL] = pd.Series(labels, index=frame.index, dtype="str")
        elif not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].astype("str")
    return frame


def as_numbers(values: pd.Series) -> pd.Series:
    """Stored numbers (a regressor's labels, in their one spelling) back as float64, exactly:
    ``"0.30000000000000004"`` is ``0.1 + 0.2`` again (``pd.to_numeric``'s own parser is not
    exact at 17 digits and gives ``0.3``). Anything that is not a number is NaN."""
    try:
        return values.astype("float64")
    except (TypeError, ValueError):
        coerced = pd.to_numeric(values, errors="coerce")  # which ones are numbers at all
        numbers = zip(values, coerced.notna(), strict=True)
        exact = [float(v) if ok else float("nan") for v, ok in numbers]
        return pd.Series(exact, index=values.index, dtype="float64")


def storable_table(table: pa.Table) -> pa.Table:
    """The log's stored types: timestamps in nanoseconds and strings as large strings, as
    pandas writes them, so files compacted from segments and frames written with
    ``write_frame`` share one schema (the drift job reads such files as one dataset)."""
    fields = []
    for column in table.schema:
        kind = column.type
        if pa.types.is_timestamp(kind):
            kind = STORED_TIMESTAMP
        elif pa.types.is_string(kind):
            kind = pa.large_string()
        fields.append(pa.field(column.name, kind))
    return table.cast(pa.schema(fields))
