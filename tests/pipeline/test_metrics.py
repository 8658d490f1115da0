"""Permutation importance on a sample of rows (``evaluate.importance_rows``): the evaluate
stage's cost is its scorings, so each repeat scores a seeded sample, not the whole split."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from pipeline.metrics import permutation_importance


def fitted(rows: int = 3000) -> tuple[LogisticRegression, pd.DataFrame, pd.Series]:
    """One informative feature (``signal``) and two that are noise."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(rows, 3)), columns=["signal", "noise_a", "noise_b"])
    y = pd.Series(np.where(X["signal"] + 0.3 * rng.normal(size=rows) > 0, "1", "0"))
    return LogisticRegression().fit(X, y), X, y


def test_a_sample_ranks_like_the_whole_split_and_is_seeded() -> None:
    model, X, y = fitted()
    whole = permutation_importance(model, X, y, "roc_auc", 3, 42)
    sampled = permutation_importance(model, X, y, "roc_auc", 3, 42, rows=500)
    again = permutation_importance(model, X, y, "roc_auc", 3, 42, rows=500)
    other = permutation_importance(model, X, y, "roc_auc", 3, 43, rows=500)
    assert max(whole, key=whole.__getitem__) == max(sampled, key=sampled.__getitem__) == "signal"
    assert sampled == again  # the same seed draws the same rows and shuffles
    assert sampled != other and sampled != whole  # a sample, not the whole split
    assert abs(sampled["signal"] - whole["signal"]) < 0.05
    assert all(abs(sampled[c]) < 0.02 for c in ("noise_a", "noise_b"))


def test_more_rows_than_the_split_has_scores_them_all() -> None:
    model, X, y = fitted(400)
    whole = permutation_importance(model, X, y, "roc_auc", 2, 42)
    assert permutation_importance(model, X, y, "roc_auc", 2, 42, rows=400) == whole
    assert permutation_importance(model, X, y, "roc_auc", 2, 42, rows=10_000) == whole
