"""A window as the drift job judges it: a seeded uniform sample of its rows, one of its
labeled rows, and the totals of every row, whatever the window's size.

Every row gets a uniform random key from one generator seeded by ``data.seed``, in the
log's order (files sorted by date and name, rows as stored); the ``rows`` smallest keys are
the sample (a uniform sample without replacement), and the ``rows`` smallest among labeled
rows the labeled sample. :class:`WindowTotals` counts rows, missing values, model versions
and label values over every row on the way. The same rows give the same sample, whether
they are streamed from the log (``read_window_sample``) or held in memory
(:func:`sample_frame`, for ``--current FILE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from monitoring.capture.schema import MODEL_NAME, MODEL_VERSION
from monitoring.capture.store import SkippedFile
from pipeline.labels import normalize_labels
from pipeline.settings import Settings

SAMPLE_KEY = "__sample_key"


@dataclass
class WindowTotals:
    """What every row of a window says, counted while it is read, not only the sample."""

    rows: int = 0
    labeled: int = 0
    missing: dict[str, int] = field(default_factory=dict)  # per feature: rows without a value
    model_names: set[str] = field(default_factory=set)
    model_versions: set[str] = field(default_factory=set)
    labels: set[str] = field(default_factory=set)  # the joined labels' values

    def add(
        self, chunk: pa.Table, features: Sequence[str], labels: pa.Array, has_label: np.ndarray
    ) -> None:
        """Count one chunk of a window: ``labels`` is its joined label column (one value per
        row), ``has_label`` the positions of the rows a label came back for. The one way a
        window is totalled, streamed or in memory."""
        size = chunk.num_rows
        self.rows += size
        self.labeled += len(has_label)
        for column in features:
            present = column in chunk.column_names
            missing = _missing(chunk[column]) if present else size
            self.missing[column] = self.missing.get(column, 0) + missing
        self.model_names |= _distinct(chunk, MODEL_NAME)
        self.model_versions |= _distinct(chunk, MODEL_VERSION)
        self.labels |= {str(v) for v in pc.unique(labels.take(has_label).drop_null()).to_pylist()}


@dataclass
class WindowSample:
    """A window as the drift job judges it: a uniform sample of its rows and one of its
    labeled rows (each every row when there are no more than the sample's size), both
    shaped like ``read_window``'s frame, and the totals of the whole window; ``skipped``
    are the store files that could not be read, moved to the quarantine, none of their
    rows counted; ``labels_unjoined`` the label rows whose request id the window did not
    serve, dropped."""

    current: pd.DataFrame
    labeled: pd.DataFrame
    totals: WindowTotals
    skipped: list[SkippedFile] = field(default_factory=list)
    labels_unjoined: int = 0

    @property
    def complete(self) -> bool:
        """Whether the sample is the whole window."""
        return len(self.current) == self.totals.rows


def _missing(values: pa.Array | pa.ChunkedArray) -> int:
    count = values.null_count
    if pa.types.is_floating(values.type):
        count += int(pc.sum(pc.is_nan(values)).as_py() or 0)
    return int(count)


def _distinct(table: pa.Table, column: str) -> set[str]:
    if column not in table.column_names:
        return set()
    return {str(v) for v in pc.unique(table[column].drop_null()).to_pylist()}


def smallest(keys: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` smallest keys, in position order (all of them if no more)."""
    if len(keys) <= k:
        return np.arange(len(keys))
    return np.sort(np.argpartition(keys, k - 1)[:k])


class Smallest:
    """The rows with the ``k`` smallest keys (column :data:`SAMPLE_KEY`) seen so far, pruned
    as they come. Held as Arrow tables (a string a few bytes, not a Python object of ~60)
    and made a pandas frame once, at the end. (This did not move the 10M-row window's
    peak; the scanner's read-ahead in the window's scan was that.)"""

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


def _arrow(values: pd.Series) -> pa.Array:
    """A frame's column as Arrow for counting, missing values as nulls; values of mixed
    types as their text."""
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        present = values.notna().to_numpy()
        texts = [str(v) if keep else None for v, keep in zip(values, present, strict=True)]
        return pa.array(texts, pa.string())


def sample_frame(frame: pd.DataFrame, settings: Settings, rows: int, seed: int) -> WindowSample:
    """The same sample out of a frame already in memory (``--current FILE``): the same keys
    in the frame's order, so a log of one time-ordered file gives the rows
    ``read_window_sample`` gives."""
    data = settings.data
    keys = np.random.default_rng(seed).random(len(frame))
    target = frame[data.target] if data.target in frame else pd.Series(None, index=frame.index)
    has_label = np.flatnonzero(target.notna().to_numpy())
    counted = [c for c in (*data.features.all, MODEL_NAME, MODEL_VERSION) if c in frame]
    chunk = pa.table({c: _arrow(frame[c]) for c in counted}) if counted else None
    if chunk is None:
        chunk = pa.table({"_": pa.nulls(len(frame))})
    labels = pa.array(normalize_labels(target).astype(object), pa.string(), from_pandas=True)
    totals = WindowTotals(missing=dict.fromkeys(data.features.all, 0))
    totals.add(chunk, data.features.all, labels, has_label)
    current = frame.iloc[smallest(keys, rows)]
    labeled = frame.iloc[has_label[smallest(keys[has_label], rows)]]
    return WindowSample(current=current, labeled=labeled, totals=totals)
