"""Replay scenarios: production traffic with drift injected, defined in ``params.yaml``.

One definition serves the demo, ``mlstack replay --scenario NAME`` and the tests, so the
drift the demo shows is the drift the tests check.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.io import read_table
from pipeline.labels import normalize_labels
from pipeline.settings import Scenario, Settings


class ScenarioError(ValueError):
    """A scenario that names a column, class or scenario that does not exist."""


def inject(
    rows: pd.DataFrame, labels: pd.Series | None, scenario: Scenario, classes: list[str] | None
) -> tuple[pd.DataFrame, pd.Series | None]:
    """The pure core: shift ``rows`` and flip or scale ``labels`` (aligned on the index) as
    told. ``classes`` is None for a numeric target (regression)."""
    rng = np.random.default_rng(scenario.seed)
    rows = rows.copy()
    for column, delta in scenario.add.items():
        _require(rows, column)
        rows[column] = rows[column].astype("float64") + delta
    for column, move in scenario.reassign.items():
        _require(rows, column)
        moved = rng.random(len(rows)) < move.share
        values = rows[column].astype(object)
        values[moved] = move.value
        rows[column] = values
    if scenario.flip_labels:
        if labels is None or classes is None:
            raise ScenarioError("flip_labels needs a labels file and classes (a classifier)")
        group = _in_ranges(rows, scenario.flip_labels)
        labels = labels.copy()
        following = {c: classes[(i + 1) % len(classes)] for i, c in enumerate(classes)}
        labels[group] = labels[group].map(following)
    if scenario.scale_labels is not None:
        if labels is None or classes is not None:
            raise ScenarioError("scale_labels needs a labels file and a numeric target")
        group = _in_ranges(rows, scenario.scale_labels.ranges)
        labels = labels.copy()
        labels[group] = labels[group] * scenario.scale_labels.factor
    return rows, labels


def _in_ranges(rows: pd.DataFrame, ranges: dict[str, tuple[float, float]]) -> pd.Series:
    """The rows whose numerical columns all lie in their ``[low, high]``."""
    group = pd.Series(True, index=rows.index)
    for column, (low, high) in ranges.items():
        _require(rows, column)
        group &= rows[column].between(low, high)
    return group


def _require(rows: pd.DataFrame, column: str) -> None:
    if column not in rows.columns:
        raise ScenarioError(f"scenario names column {column!r}, which the rows do not have")


def load(settings: Settings, name: str) -> tuple[pd.DataFrame, pd.Series | None]:
    """The rows of scenario ``name`` (id and features) and their labels, indexed alike."""
    if name not in settings.scenarios:
        known = ", ".join(sorted(settings.scenarios)) or "none"
        raise ScenarioError(f"unknown scenario {name!r}; params.yaml defines: {known}")
    scenario = settings.scenarios[name]
    data = settings.data
    rows = read_table(settings.path(scenario.rows))
    for column, allowed in scenario.where.items():
        _require(rows, column)
        rows = rows[rows[column].isin(allowed)]
    rows = rows[_in_ranges(rows, scenario.between)]
    if scenario.sample is not None and scenario.sample < len(rows):
        rows = rows.sample(n=scenario.sample, random_state=scenario.seed)
    labels = None
    if scenario.labels is not None:
        if data.id is None:
            raise ScenarioError("joining a scenario's labels needs data.id in params.yaml")
        table = read_table(settings.path(scenario.labels)).drop_duplicates(data.id)
        by_id = table.set_index(data.id)[data.target]
        labels = pd.Series(by_id.reindex(rows[data.id]).to_numpy(), index=rows.index)
        labels = labels.astype("float64") if data.is_regression else normalize_labels(labels)
    classes = None
    if not data.is_regression:
        classes = data.classes or (sorted(labels.dropna().unique()) if labels is not None else [])
    rows, labels = inject(
        rows.drop(columns=[c for c in data.drop if c in rows]), labels, scenario, classes
    )
    return rows.reset_index(drop=True), None if labels is None else labels.reset_index(drop=True)
