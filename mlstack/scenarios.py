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
    rows: pd.DataFrame, labels: pd.Series | None, scenario: Scenario, classes: list[str]
) -> tuple[pd.DataFrame, pd.Series | None]:
    """The pure core: shift ``rows`` and flip ``labels`` (aligned on the index) as told."""
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
        if labels is None:
            raise ScenarioError("flip_labels needs a labels file")
        group = pd.Series(True, index=rows.index)
        for column, (low, high) in scenario.flip_labels.items():
            _require(rows, column)
            group &= rows[column].between(low, high)
        labels = labels.copy()
        following = {c: classes[(i + 1) % len(classes)] for i, c in enumerate(classes)}
        labels[group] = labels[group].map(following)
    return rows, labels


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
    if scenario.sample is not None and scenario.sample < len(rows):
        rows = rows.sample(n=scenario.sample, random_state=scenario.seed)
    labels = None
    if scenario.labels is not None:
        if data.id is None:
            raise ScenarioError("joining a scenario's labels needs data.id in params.yaml")
        table = read_table(settings.path(scenario.labels)).drop_duplicates(data.id)
        by_id = table.set_index(data.id)[data.target]
        labels = normalize_labels(
            pd.Series(by_id.reindex(rows[data.id]).to_numpy(), index=rows.index)
        )
    classes = data.classes or sorted(labels.dropna().unique()) if labels is not None else []
    rows, labels = inject(
        rows.drop(columns=[c for c in data.drop if c in rows]), labels, scenario, list(classes)
    )
    return rows.reset_index(drop=True), None if labels is None else labels.reset_index(drop=True)
