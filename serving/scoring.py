"""Scoring validated rows: a compiled input path for the model factory's pipelines.

``Pipeline.predict_proba`` on a pandas frame spends most of a small call in the
``ColumnTransformer``: it checks, converts and indexes every column again on each call
(``check_array`` about twenty times, ``SimpleImputer`` and ``OneHotEncoder`` input checks
on object columns), though the service has already validated every value with pydantic.
:func:`prepare_scorer` reads the fitted transformers once (medians, means and scales,
the one-hot encoder's categories) and builds the estimator's input matrix from the
request rows with numpy and one dict lookup per category, in the column order the
estimator was fitted on; the final estimator then scores that matrix inside
``sklearn.config_context(assume_finite=True, skip_parameter_validation=True)``, or, for
a ``HistGradientBoostingClassifier`` or ``HistGradientBoostingRegressor``, through its
trees flattened into numpy arrays (serving/trees.py), which skips the estimator's per-tree
Python loop. A regressor (``data.task: regression``) is scored the same way with
``predict``: one number per row.

It compiles exactly the shapes ``pipeline.model.build_model`` makes: a ``Pipeline`` of a
``ColumnTransformer`` (other columns dropped) whose parts are ``SimpleImputer`` then
``StandardScaler`` on numbers and ``SimpleImputer(strategy="constant")`` then
``OneHotEncoder(handle_unknown="ignore")`` on categories, and a final estimator fitted on
that unnamed matrix. Anything else, or a compiled path whose probabilities differ from
``model.predict_proba`` by more than ``serving.compiled_tolerance`` (a regressor: predictions
differing from ``model.predict`` by more than the tolerance times ``max(1, |prediction|)``,
since a price and a rate have different scales) on a deterministic
sample of rows (every category, missing values, an unknown category, numbers over the
scaler's range), scores through the plain frame path instead; the reason is logged once,
when the model is loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from sklearn.base import is_regressor

from monitoring.capture import FeatureBlocks
from pipeline.labels import normalize_label
from pipeline.settings import Settings
from serving.trees import FlatTrees, NotFlat, flatten

logger = logging.getLogger(__name__)

Rows = Sequence[dict[str, Any]]
UNKNOWN_CATEGORY = "\0not a category the model knows"  # in the check sample only
SAMPLE_ROWS = 256  # rows in the load-time check (more if a column has more categories)


class NotCompiled(ValueError):
    """The model has a shape the compiled path does not cover; the message says which part."""


def frame(rows: Rows, columns: Sequence[str], numerical: Sequence[str]) -> Any:
    """The rows as the pandas frame the model was fitted on: numbers as float64, None as
    missing (the plain path, and the reference the compiled path is checked against)."""
    import pandas as pd

    table = pd.DataFrame.from_records(rows, columns=list(columns))
    for column in numerical:
        table[column] = table[column].astype("float64")
    return table


@dataclass(frozen=True)
class _Numbers:
    """Numerical columns: fill missing, then ``(x - mean) / scale``, into ``positions``."""

    columns: list[str]
    positions: np.ndarray
    fill: np.ndarray
    mean: np.ndarray | None
    scale: np.ndarray | None


@dataclass(frozen=True)
class _Categories:
    """Categorical columns: each value (None: the imputer's constant) to its one-hot column.

    A value is first coded (``codes``: its index among the encoder's categories, their
    count for None, -1 for a category the model never saw), then the code placed
    (``hot``: the matrix column of each code, -1 for none, indexed by the code).
    """

    columns: list[str]
    codes: list[dict[Any, int]]  # per column: category (or None) -> its code
    hot: list[np.ndarray]  # per column: code -> matrix column, or -1 (the last: unknown)
    categories: list[list[Any]]  # per column: the encoder's categories, in code order


@dataclass(frozen=True)
class CompiledInput:
    """The fitted ``ColumnTransformer`` as plain arrays, and the estimator behind it."""

    width: int
    numbers: list[_Numbers]
    categories: list[_Categories]
    estimator: Any
    trees: FlatTrees | None = None  # the estimator's trees walked with numpy, if it has them
    regressor: bool = False  # scored with predict (a number per row), not predict_proba
    dictionary: bytes = b""  # the categories as FeatureBlocks carries them ("": not strings)

    def encode(self, rows: Rows) -> tuple[np.ndarray, FeatureBlocks]:
        """The estimator's input for ``rows`` (what the fitted transformer would give) and
        the rows' features as blocks, the numbers as sent and the categories as codes."""
        size = len(rows)
        out = np.zeros((size, self.width), dtype=np.float64)
        raw = []
        for part in self.numbers:
            sent = np.array(
                [[row[c] for c in part.columns] for row in rows], dtype=np.float64
            ).reshape(size, len(part.columns))
            raw.append(sent.T)
            values = np.where(np.isnan(sent), part.fill, sent)
            if part.mean is not None:
                values -= part.mean
            if part.scale is not None:
                values /= part.scale
            out[:, part.positions] = values
        codes = np.empty((sum(len(p.columns) for p in self.categories), size), dtype=np.int32)
        at, starts = 0, np.arange(size) * self.width
        for encoded in self.categories:
            for column, coded, hot in zip(encoded.columns, encoded.codes, encoded.hot, strict=True):
                codes[at] = [coded.get(row[column], -1) for row in rows]
                positions = hot[codes[at]]
                placed = positions >= 0  # an unknown category: all zeros
                out.ravel()[starts[placed] + positions[placed]] = 1.0
                at += 1
        blocks = FeatureBlocks(
            tuple(c for p in self.numbers for c in p.columns),
            np.concatenate(raw) if raw else np.empty((0, size)),
            tuple(c for p in self.categories for c in p.columns),
            codes,
            self.dictionary,
        )
        return out, blocks

    def matrix(self, rows: Rows) -> np.ndarray:
        """The estimator's input for ``rows``: what the fitted transformer would give."""
        return self.encode(rows)[0]

    def estimate(self, matrix: np.ndarray) -> np.ndarray:
        """The estimator's output for its input matrix: the class probabilities, or a
        regressor's prediction per row."""
        import sklearn

        if self.trees is not None:
            return (
                self.trees.predict(matrix) if self.regressor else self.trees.predict_proba(matrix)
            )
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            if self.regressor:
                return np.asarray(self.estimator.predict(matrix), dtype=np.float64)
            return np.asarray(self.estimator.predict_proba(matrix), dtype=np.float64)

    def output(self, rows: Rows) -> np.ndarray:
        """The class probabilities, or a regressor's prediction per row, for ``rows``."""
        return self.estimate(self.matrix(rows))

    def scored(self, rows: Rows) -> tuple[np.ndarray, FeatureBlocks | None]:
        """:meth:`output` and the features as blocks (``None`` unless every category is a
        string, which the capture log's dictionary needs)."""
        matrix, blocks = self.encode(rows)
        return self.estimate(matrix), blocks if self.dictionary else None


@dataclass(frozen=True)
class Scorer:
    """``predict_proba`` for validated rows: compiled when the model allows it, else the
    model's own pipeline on a pandas frame."""

    model: Any
    columns: list[str]
    numerical: list[str]
    compiled: CompiledInput | None
    reason: str  # why the compiled path is not used ("" when it is)

    def predict_proba(self, rows: Rows) -> np.ndarray:
        if self.compiled is not None:
            return self.compiled.output(rows)
        table = frame(rows, self.columns, self.numerical)
        return np.asarray(self.model.predict_proba(table), dtype=np.float64)

    def predict(self, rows: Rows) -> np.ndarray:
        """A regressor's predictions for validated rows, one float each."""
        if self.compiled is not None:
            return self.compiled.output(rows)
        table = frame(rows, self.columns, self.numerical)
        return np.asarray(self.model.predict(table), dtype=np.float64)

    def scored(self, rows: Rows, regressor: bool) -> tuple[np.ndarray, FeatureBlocks | None]:
        """The predictions (a regressor's) or the probabilities, and the features as the
        compiled path held them (``None`` on the frame path): what the capture log writes."""
        if self.compiled is not None:
            return self.compiled.scored(rows)
        return (self.predict(rows) if regressor else self.predict_proba(rows)), None


def _steps(transformer: Any) -> list[Any]:
    from sklearn.pipeline import Pipeline

    return [s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]


def _numbers(steps: list[Any], columns: list[str], positions: np.ndarray) -> _Numbers:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    kinds = [type(s) for s in steps]
    if kinds not in ([SimpleImputer, StandardScaler], [SimpleImputer]):
        raise NotCompiled(f"numerical steps {[k.__name__ for k in kinds]}")
    imputer, *rest = steps
    fill = np.asarray(imputer.statistics_, dtype=np.float64)
    if imputer.add_indicator or not _is_nan(imputer.missing_values) or np.isnan(fill).any():
        raise NotCompiled("a numerical imputer with indicators, other markers or empty columns")
    mean = scale = None
    if rest:
        scaler = rest[0]
        mean = None if scaler.mean_ is None or not scaler.with_mean else scaler.mean_
        scale = None if scaler.scale_ is None or not scaler.with_std else scaler.scale_
    return _Numbers(columns, positions, fill, mean, scale)


def _categories(steps: list[Any], columns: list[str], start: int) -> tuple[_Categories, int]:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    if [type(s) for s in steps] != [SimpleImputer, OneHotEncoder]:
        raise NotCompiled(f"categorical steps {[type(s).__name__ for s in steps]}")
    imputer, encoder = steps
    if (
        imputer.strategy != "constant"
        or imputer.add_indicator
        or not _is_nan(imputer.missing_values)
        or not isinstance(imputer.fill_value, str)
    ):
        raise NotCompiled("a categorical imputer other than a constant string for NaN")
    if (
        encoder.handle_unknown != "ignore"
        or encoder.drop_idx_ is not None
        or getattr(encoder, "_infrequent_enabled", False)
    ):
        raise NotCompiled("a one-hot encoder that drops, groups or refuses categories")
    codes: list[dict[Any, int]] = []
    hot: list[np.ndarray] = []
    categories: list[list[Any]] = []
    position = start
    for values in encoder.categories_:
        known = values.tolist()
        if any(v is None or v != v for v in known):
            raise NotCompiled("a one-hot encoder with a missing value as a category")
        coded = {v: i for i, v in enumerate(known)}
        filled = position + coded[imputer.fill_value] if imputer.fill_value in coded else -1
        coded[None] = len(known)  # a missing value: the imputer's constant, if known
        codes.append(coded)
        hot.append(np.array([*range(position, position + len(known)), filled, -1], np.intp))
        categories.append(known)
        position += len(known)
    part = _Categories(columns, codes, hot, categories)
    return part, position - start


def _dictionary(categories: list[_Categories]) -> bytes:
    """The categories of every categorical column as FeatureBlocks carries them, or ``b""``
    when one is not a string (the capture log then writes the rows' own values)."""
    known = {
        c: v for part in categories for c, v in zip(part.columns, part.categories, strict=True)
    }
    if not all(isinstance(v, str) for values in known.values() for v in values):
        return b""
    return orjson.dumps(known)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def compile_input(model: Any, settings: Settings) -> CompiledInput:
    """The compiled path for ``model``, or :class:`NotCompiled` naming the part it cannot do."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    features = settings.data.features
    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        raise NotCompiled(f"a {type(model).__name__}, not a two-step Pipeline")
    columns, estimator = model.steps[0][1], model.steps[1][1]
    if not isinstance(columns, ColumnTransformer) or columns.sparse_output_:
        raise NotCompiled(f"a first step {type(columns).__name__}, not a dense ColumnTransformer")
    if getattr(estimator, "feature_names_in_", None) is not None:
        raise NotCompiled("an estimator fitted on named columns")
    numbers, categories, seen = [], [], []
    for name, transformer, selected in columns.transformers_:
        if isinstance(transformer, str):
            if transformer == "drop" or len(selected) == 0:
                continue
            raise NotCompiled(f"columns passed through by {name!r}")
        if not all(isinstance(c, str) for c in selected):
            raise NotCompiled(f"{name!r} selects columns by position")
        chosen = list(selected)
        seen += chosen
        place = columns.output_indices_[name]
        steps = _steps(transformer)
        if set(chosen) <= set(features.numerical):
            positions = np.arange(place.start, place.stop)
            if len(positions) != len(chosen):
                raise NotCompiled(f"{name!r} gives {len(positions)} columns for {len(chosen)}")
            numbers.append(_numbers(steps, chosen, positions))
        elif set(chosen) <= set(features.categorical):
            part, width = _categories(steps, chosen, place.start)
            if width != place.stop - place.start:
                raise NotCompiled(f"{name!r} gives {place.stop - place.start} columns, not {width}")
            categories.append(part)
        else:
            raise NotCompiled(f"{name!r} mixes numerical and categorical columns")
    width = max((p.stop for p in columns.output_indices_.values()), default=0)
    if sorted(seen) != sorted(features.all):
        raise NotCompiled(f"transforms columns {sorted(seen)}, not the schema's features")
    if getattr(estimator, "n_features_in_", None) != width:
        raise NotCompiled(f"an estimator fitted on {estimator.n_features_in_} columns, not {width}")
    regressor = is_regressor(estimator)
    if not regressor and not hasattr(estimator, "predict_proba"):
        raise NotCompiled(f"a final {type(estimator).__name__} without predict_proba")
    try:
        trees: FlatTrees | None = flatten(estimator)
    except NotFlat as why:
        logger.info("the estimator scores itself: %s", why)
        trees = None
    return CompiledInput(
        width,
        numbers,
        categories,
        estimator,
        trees,
        regressor=regressor,
        dictionary=_dictionary(categories),
    )


def check_rows(compiled: CompiledInput, settings: Settings) -> list[dict[str, Any]]:
    """A deterministic sample that reaches every part of the compiled path: each category
    of each column several times, None, a category the model never saw, and numbers
    spread over the scaler's range (within ``data.ranges``), in seeded combinations."""
    rng = np.random.default_rng(settings.data.seed)
    choices: dict[str, list[Any]] = {}
    for numbers in compiled.numbers:
        for i, column in enumerate(numbers.columns):
            center = numbers.mean[i] if numbers.mean is not None else numbers.fill[i]
            spread = numbers.scale[i] if numbers.scale is not None else 1.0
            low, high = settings.data.ranges.get(column, (-np.inf, np.inf))
            spots = np.clip(center + spread * np.linspace(-3, 3, 25), low, high)
            choices[column] = [*(float(v) for v in spots), float(numbers.fill[i]), None]
    for categories in compiled.categories:
        for column, known in zip(categories.columns, categories.categories, strict=True):
            choices[column] = [*(normalize_label(v) for v in known), None, UNKNOWN_CATEGORY]
    count = max(SAMPLE_ROWS, 4 * max(len(c) for c in choices.values()))
    picked = {
        column: [values[i] for i in rng.permutation(np.arange(count) % len(values))]
        for column, values in choices.items()
    }
    return [{c: picked[c][i] for c in settings.data.features.all} for i in range(count)]


def verify(compiled: CompiledInput, model: Any, settings: Settings) -> None:
    """Raise :class:`NotCompiled` unless the compiled path gives ``model.predict_proba``'s
    probabilities within ``serving.compiled_tolerance`` on :func:`check_rows`, in one batch
    and for a single row."""
    features = settings.data.features
    tolerance = settings.serving.compiled_tolerance
    rows = check_rows(compiled, settings)
    table = frame(rows, features.all, features.numerical)
    what = (
        "predictions differ from predict"
        if compiled.regressor
        else "probabilities differ from predict_proba"
    )
    expected = np.asarray(
        model.predict(table) if compiled.regressor else model.predict_proba(table)
    )
    for sample in (rows, rows[:1]):
        got, want = compiled.output(sample), expected[: len(sample)]
        scale = np.maximum(np.abs(want), 1.0) if compiled.regressor else 1.0
        same = got.shape == want.shape
        difference = float(np.max(np.abs(got - want) / scale)) if same else np.inf
        if not difference <= tolerance:
            raise NotCompiled(
                f"{what} by {difference:.3g} on {len(sample)} check rows (tolerance {tolerance})"
            )


def prepare_scorer(model: Any, settings: Settings) -> Scorer:
    """The scorer for ``model``: compiled and verified if ``serving.compiled_inputs`` and the
    model's shape allow it, else the frame path (the reason logged once, here)."""
    features = settings.data.features
    compiled: CompiledInput | None = None
    reason = "serving.compiled_inputs is false"
    if settings.serving.compiled_inputs:
        try:
            compiled = compile_input(model, settings)
            verify(compiled, model, settings)
            reason = ""
        except Exception as error:  # noqa: BLE001 - any failure: the frame path serves
            compiled, reason = None, f"{type(error).__name__}: {error}"
    if compiled is None:
        logger.warning("scoring through the model's pandas pipeline (not compiled): %s", reason)
    else:
        walked = ", trees walked with numpy" if compiled.trees is not None else ""
        logger.info(
            "scoring through the compiled input path (%d columns%s)", compiled.width, walked
        )
    return Scorer(model, list(features.all), list(features.numerical), compiled, reason)
