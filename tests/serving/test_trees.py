"""HistGradientBoosting's trees walked with numpy give the estimator's own probabilities:
binary and multiclass, missing values sent both ways, trees that are a single leaf; and
what the flat walk cannot do is refused by name, so the estimator scores itself."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from serving.trees import NotFlat, flatten

TOLERANCE = 1e-12


def data(rows: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Numbers with missing values that carry signal, so the trees learn where NaN goes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6))
    score = x[:, 0] + 0.5 * x[:, 1] * x[:, 2] - x[:, 3]
    gone = rng.random(size=(rows, 6)) < 0.15
    score = np.where(gone[:, 0], 1.5, score)  # missing in column 0 means a high score
    x[gone] = np.nan
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1]))
    return x, y


@pytest.mark.parametrize("classes", [2, 3])
def test_flat_trees_give_predict_proba(classes: int) -> None:
    x, y = data(4000, classes, 0)
    model = HistGradientBoostingClassifier(max_iter=60, random_state=0).fit(x, y)
    trees = flatten(model)
    assert len(trees.roots) == model.n_iter_ * (1 if classes == 2 else classes)
    assert trees.missing_left.any() and not trees.missing_left.all()  # NaN goes both ways
    test, _ = data(3000, classes, 1)
    want = model.predict_proba(test)
    got = trees.predict_proba(test)
    assert got.shape == want.shape == (3000, classes)
    assert float(np.max(np.abs(got - want))) <= TOLERANCE
    for row in range(20):  # one row at a time, as a one-row client's call
        one = trees.predict_proba(test[row : row + 1])
        assert float(np.max(np.abs(one - want[row]))) <= TOLERANCE
    # no missing value in the matrix: the walk skips the NaN test and still agrees
    full = np.nan_to_num(test)
    assert float(np.max(np.abs(trees.predict_proba(full) - model.predict_proba(full)))) <= TOLERANCE


def test_trees_of_a_single_leaf() -> None:
    x, y = data(200, 2, 2)
    model = HistGradientBoostingClassifier(max_iter=5, min_samples_leaf=150).fit(x, y)
    trees = flatten(model)
    assert trees.leaf[trees.roots].all(), "every tree should be its root leaf"
    assert np.allclose(trees.predict_proba(x), model.predict_proba(x), rtol=0, atol=TOLERANCE)


def test_what_the_flat_walk_cannot_do_is_refused_by_name() -> None:
    x, y = data(500, 2, 3)
    with pytest.raises(NotFlat, match="LogisticRegression"):
        flatten(LogisticRegression().fit(np.nan_to_num(x), y))
    with pytest.raises(NotFlat, match="without fitted trees"):
        flatten(HistGradientBoostingClassifier())
    codes = np.column_stack([np.nan_to_num(x[:, :5]), np.arange(500) % 4])
    native = HistGradientBoostingClassifier(max_iter=20, categorical_features=[5]).fit(codes, y)
    with pytest.raises(NotFlat, match="categor"):
        flatten(native)
