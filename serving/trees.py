"""HistGradientBoosting's trees as flat arrays, walked for every tree and row at once.

``HistGradientBoostingClassifier.predict_proba`` (and the regressor's ``predict``) loops
over its trees in Python and
enters a threaded Cython routine once per tree: with ~100 trees that is a fixed few
milliseconds a call, whatever the rows, and most of a small call (serving/scoring.py's
profile). :func:`flatten` copies the fitted predictors' nodes into one set of arrays,
and :meth:`FlatTrees.predict_proba` moves all (row, tree) pairs one level down per step
with numpy, setting each pair aside when it reaches a leaf, then sums the leaf values
per class onto the model's baseline and applies the model's own loss link (a regressor:
its link's inverse on the one raw column, as ``predict`` does): the same
decisions as scikit-learn's (``NaN`` follows ``missing_go_to_left``, else
``x <= threshold`` goes left), summed in another order, so equal to ``predict_proba``
within float rounding.
The scorer checks that on its check rows before it is used (``serving.compiled_tolerance``).

Only numerical splits: a model fitted with native categorical features has bitset
splits, which raise :class:`NotFlat` (the estimator's own ``predict_proba`` serves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


class NotFlat(ValueError):
    """The estimator is not one whose trees this module can walk; the message says why."""


@dataclass(frozen=True)
class FlatTrees:
    # per node, all trees' nodes in one index space (a leaf's split fields are never read)
    feature: np.ndarray  # the column it splits on
    threshold: np.ndarray  # x <= threshold goes left
    missing_left: np.ndarray  # where NaN goes
    left: np.ndarray  # the next node down
    right: np.ndarray
    leaf: np.ndarray  # a leaf: the walk stops here
    value: np.ndarray  # a leaf's value
    roots: np.ndarray  # per tree: its root node
    output: np.ndarray  # per tree: the raw-score column it adds to
    depth: int  # the deepest leaf's depth: steps enough for every tree
    baseline: np.ndarray  # the model's raw score before any tree, per column
    link: Any  # the model's loss: raw scores to probabilities

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        """The model's raw scores: baseline plus each tree's leaf value, per column."""
        rows, width = matrix.shape
        trees = len(self.roots)
        flat = np.ascontiguousarray(matrix, dtype=np.float64).ravel()
        missing = bool(np.isnan(flat).any())
        node = np.tile(self.roots, rows)  # (row, tree) pairs, row-major
        where = np.arange(rows * trees, dtype=np.intp)
        where = where[~self.leaf[node]]  # pairs still walking (a tree may be one leaf)
        at, base = node[where], (where // trees) * width
        for _ in range(self.depth):
            if not len(where):
                break
            x = flat[base + self.feature[at]]
            left = x <= self.threshold[at]
            if missing:
                left = np.where(np.isnan(x), self.missing_left[at], left)
            at = np.where(left, self.left[at], self.right[at])
            done = self.leaf[at]
            if done.any():  # settle the pairs that reached a leaf, walk on with the rest
                node[where[done]] = at[done]
                going = ~done
                where, at, base = where[going], at[going], base[going]
        leaves = self.value[node].reshape(rows, trees)
        columns = len(self.baseline)
        out = np.empty((rows, columns), dtype=np.float64)
        if columns == 1:
            out[:, 0] = leaves.sum(axis=1) + self.baseline[0]
            return out
        for k in range(columns):
            out[:, k] = leaves[:, self.output == k].sum(axis=1) + self.baseline[k]
        return out

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.link.predict_proba(self.raw(matrix)), dtype=np.float64)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """A regressor's predictions: the inverse link of the one raw column."""
        return np.asarray(self.link.link.inverse(self.raw(matrix)[:, 0]), dtype=np.float64)


def flatten(estimator: Any) -> FlatTrees:
    """A fitted ``HistGradientBoostingClassifier``'s or ``HistGradientBoostingRegressor``'s
    trees as :class:`FlatTrees`."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    kinds = (HistGradientBoostingClassifier, HistGradientBoostingRegressor)
    if not isinstance(estimator, kinds):
        raise NotFlat(f"a {type(estimator).__name__}, not a HistGradientBoosting model")
    predictors = getattr(estimator, "_predictors", None)
    if not predictors:
        raise NotFlat(f"a {type(estimator).__name__} without fitted trees")
    if getattr(estimator, "_preprocessor", None) is not None:
        raise NotFlat(f"a {type(estimator).__name__} that encodes categories itself")
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("feature", "threshold", "missing_left", "left", "right", "leaf", "value")
    }
    roots, output, depth, start = [], [], 0, 0
    for iteration in predictors:
        for column, predictor in enumerate(iteration):
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise NotFlat("trees with categorical (bitset) splits")
            parts["feature"].append(nodes["feature_idx"].astype(np.intp))
            parts["threshold"].append(nodes["num_threshold"].astype(np.float64))
            parts["missing_left"].append(nodes["missing_go_to_left"].astype(bool))
            parts["left"].append(nodes["left"].astype(np.intp) + start)
            parts["right"].append(nodes["right"].astype(np.intp) + start)
            parts["leaf"].append(nodes["is_leaf"].astype(bool))
            parts["value"].append(nodes["value"].astype(np.float64))
            roots.append(start)
            output.append(column)
            depth = max(depth, int(nodes["depth"].max()))
            start += len(nodes)
    baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64).reshape(-1)
    if len(baseline) != len(predictors[0]):
        raise NotFlat(f"{len(baseline)} baseline scores for {len(predictors[0])} trees a round")
    joined = {k: np.concatenate(v) for k, v in parts.items()}
    return FlatTrees(
        **joined,
        roots=np.asarray(roots, dtype=np.intp),
        output=np.asarray(output, dtype=np.intp),
        depth=depth,
        baseline=baseline,
        link=estimator._loss,
    )
