"""CBPE and the performance / concept-drift verdicts, on hand-computed and simulated data.

No Evidently here: the estimator is checked against a case computed by hand and against
scikit-learn, and the verdicts against simulated windows whose truth is known (labels
drawn from calibrated probabilities, so the model is exactly as good as it believes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from monitoring import cbpe
from monitoring.concept_drift import judge
from pipeline.schema import PREDICTION, proba_column
from pipeline.settings import load_settings

TARGET = "y"


def frame(proba: np.ndarray, classes: list[str], labels: list[str] | None) -> pd.DataFrame:
    out = pd.DataFrame({proba_column(c): proba[:, i] for i, c in enumerate(classes)})
    out[PREDICTION] = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    if labels is not None:
        out[TARGET] = labels
    return out


def test_estimate_and_realized_match_a_hand_computed_case() -> None:
    """Four rows, P(class 1) = 0.9, 0.6, 0.3, 0.2 and labels 1, 0, 1, 0.

    Estimated: accuracy (0.9+0.6+0.7+0.8)/4 = 0.75; F1 with expected TP 1.5, FP 0.5,
    FN 0.5 = 3/4 = 0.75; ROC AUC is the area under the expected ROC curve (NannyML's:
    TPR steps by p_i / sum p, FPR by (1 - p_i) / sum (1 - p), trapezoids), i.e. the pairs
    p_i (1 - p_j) with score i above j, plus half of each row's own p_i (1 - p_i), over
    2 * 2: (0.9*1.9 + 0.6*1.5 + 0.3*0.8 + (0.09+0.24+0.21+0.16)/2) / 4 = 3.2 / 4 = 0.8.
    Realized: accuracy 2/4, F1 2/(2+1+1) = 0.5, ROC AUC 3 of 4 pairs = 0.75.
    """
    p = np.array([0.9, 0.6, 0.3, 0.2])
    rows = cbpe.window(
        frame(np.column_stack([1 - p, p]), ["0", "1"], ["1", "0", "1", "0"]), ["0", "1"], TARGET
    )
    assert cbpe.estimated("accuracy", rows) == pytest.approx(0.75)
    assert cbpe.estimated("f1", rows) == pytest.approx(0.75)
    assert cbpe.estimated("roc_auc", rows) == pytest.approx(0.8)
    assert cbpe.realized("accuracy", rows) == pytest.approx(0.5)
    assert cbpe.realized("f1", rows) == pytest.approx(0.5)
    assert cbpe.realized("roc_auc", rows) == pytest.approx(0.75)


def simulated(rows: int, classes: list[str], seed: int, sharp: float = 2.0) -> pd.DataFrame:
    """Calibrated probabilities and labels drawn from them, ties in the scores on purpose."""
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.full(len(classes), 1 / sharp), rows).round(2)
    proba = proba / proba.sum(axis=1, keepdims=True)
    drawn = (proba.cumsum(axis=1) < rng.random((rows, 1))).sum(axis=1)
    labels = np.asarray(classes, dtype=object)[np.minimum(drawn, len(classes) - 1)]
    return frame(proba, classes, list(labels))


@pytest.mark.parametrize("classes", [["0", "1"], ["bronze", "gold", "silver"]])
def test_realized_metrics_are_scikit_learns(classes: list[str]) -> None:
    data = simulated(3000, classes, 0)
    rows = cbpe.window(data, classes, TARGET)
    proba = data[[proba_column(c) for c in classes]].to_numpy()
    y, predicted = data[TARGET], data[PREDICTION]
    if len(classes) == 2:
        auc = roc_auc_score(y == classes[1], proba[:, 1])
        f1 = f1_score(y, predicted, pos_label=classes[1])
    else:
        auc = roc_auc_score(y, proba, labels=classes, multi_class="ovr")
        f1 = f1_score(y, predicted, labels=classes, average="macro")
    assert cbpe.realized("roc_auc", rows) == pytest.approx(auc)
    assert cbpe.realized("accuracy", rows) == pytest.approx(accuracy_score(y, predicted))
    assert cbpe.realized("f1", rows) == pytest.approx(f1)


@pytest.mark.parametrize("classes", [["0", "1"], ["bronze", "gold", "silver"]])
@pytest.mark.parametrize("metric", cbpe.METRICS)
def test_calibrated_estimate_is_close_to_the_realized_metric(
    classes: list[str], metric: str
) -> None:
    """Reference probabilities squashed (overconfident) then calibrated: the estimate on a
    fresh window lands within a point of the realized value; uncalibrated it does not."""
    reference, current = simulated(20_000, classes, 1), simulated(20_000, classes, 2)

    def squashed(data: pd.DataFrame) -> pd.DataFrame:
        columns = [proba_column(c) for c in classes]
        proba = data[columns].to_numpy() ** 3
        return frame(proba / proba.sum(axis=1, keepdims=True), classes, list(data[TARGET]))

    raw = cbpe.window(squashed(reference), classes, TARGET)
    calibrate = cbpe.Calibrator(raw.proba, raw.onehot)
    rows = cbpe.window(squashed(current), classes, TARGET, calibrate)
    truth = cbpe.realized(metric, rows)
    assert cbpe.estimated(metric, rows) == pytest.approx(truth, abs=0.01)
    uncalibrated = cbpe.window(squashed(current), classes, TARGET)
    assert abs(cbpe.estimated(metric, uncalibrated) - truth) > 0.01


def verdicts(current: pd.DataFrame) -> tuple[object, object]:
    settings = load_settings()
    classes = ["0", "1"]
    reference = simulated(10_000, classes, 3)
    raw = cbpe.window(reference, classes, TARGET)
    calibrate = cbpe.Calibrator(raw.proba, raw.onehot)
    return judge(
        cbpe.window(reference, classes, TARGET, calibrate),
        cbpe.window(current, classes, TARGET, calibrate),
        cbpe.window(current[current[TARGET].notna()], classes, TARGET, calibrate),
        [],
        settings,
    )


def test_same_population_is_neither_a_drop_nor_concept_drift() -> None:
    performance, concept = verdicts(simulated(2000, ["0", "1"], 4))
    assert performance.estimated_drop_detected is False  # type: ignore[attr-defined]
    assert performance.drop_detected is False  # type: ignore[attr-defined]
    assert concept.detected is False  # type: ignore[attr-defined]


def test_harder_inputs_are_a_drop_estimated_and_realized_but_not_concept_drift() -> None:
    """Covariate shift: the window's probabilities sit near 0.5 (labels still drawn from
    them), so the model is worse there and knows it."""
    performance, concept = verdicts(simulated(2000, ["0", "1"], 5, sharp=0.3))
    assert performance.estimated_drop_detected is True  # type: ignore[attr-defined]
    assert performance.drop_detected is True  # type: ignore[attr-defined]
    assert concept.detected is False  # type: ignore[attr-defined]


def test_flipped_labels_are_concept_drift_the_estimate_cannot_see() -> None:
    current = simulated(2000, ["0", "1"], 6)
    flip = np.random.default_rng(7).random(len(current)) < 0.3
    current.loc[flip, TARGET] = current.loc[flip, TARGET].map({"0": "1", "1": "0"})
    performance, concept = verdicts(current)
    assert performance.estimated_drop_detected is False  # type: ignore[attr-defined]
    assert performance.drop_detected is True  # type: ignore[attr-defined]
    assert concept.detected is True  # type: ignore[attr-defined]


def test_no_labels_means_an_estimate_only() -> None:
    current = simulated(2000, ["0", "1"], 8)
    current[TARGET] = None
    performance, concept = verdicts(current)
    assert performance.estimated is not None  # type: ignore[attr-defined]
    assert performance.realized is None  # type: ignore[attr-defined]
    assert performance.detected is False  # type: ignore[attr-defined]
    assert concept.detected is None  # type: ignore[attr-defined]
