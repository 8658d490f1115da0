"""``compare`` on the shipped data: the stable years stay quiet, injected drift is caught.

Each Evidently run on a full year takes seconds, so every comparison is computed once
(module-scoped) and several tests read it. The figures are printed with ``-s``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.concept_drift import performance_test, roc_auc
from monitoring.drift import compare
from monitoring.drift_summary import Summary
from pipeline.schema import SchemaError
from tests.monitoring.conftest import YEARS, DriftData, concept_flip, covariate_shift

pytestmark = pytest.mark.slow

DESIGN_KEYS = {
    "status": None,
    "rows": {"reference", "current", "labeled"},
    "data_drift": {"detected", "share", "columns"},
    "prediction_drift": {"detected", "method", "score"},
    "concept_drift": {
        "detected",
        "metric",
        "reference",
        "current",
        "drop",
        "p_value",
        "labeled_rows",
    },
    "label_drift": {"detected", "method", "score"},
    "model": {"name", "version"},
}


def _figures(name: str, summary: Summary) -> None:
    data, concept = summary.data_drift, summary.concept_drift
    scores = {c: round(v.score, 4) for c, v in data.columns.items()}
    print(
        f"\n{name}: data drift {data.detected} share {data.share}; scores {scores}; "
        f"prediction {summary.prediction_drift.score}; label {summary.label_drift.score}; "
        f"concept {concept.detected} {concept.metric} {concept.reference} -> {concept.current} "
        f"drop {concept.drop} p {concept.p_value}"
    )


@pytest.fixture(scope="module")
def stable(drift_data: DriftData) -> dict[int, Summary]:
    results = {}
    for year in YEARS:
        results[year] = compare(drift_data.reference, drift_data.year(year), drift_data.settings)
        _figures(str(year), results[year])
    return results


@pytest.fixture(scope="module")
def shifted(drift_data: DriftData) -> Summary:
    """20,000 rows of 2017 with older ages and more never-married people; no labels yet."""
    sample = drift_data.year(2017).sample(20_000, random_state=3)
    current = covariate_shift(sample).drop(columns=drift_data.settings.data.target)
    summary = compare(drift_data.reference, current, drift_data.settings)
    _figures("covariate shift", summary)
    return summary


@pytest.fixture(scope="module")
def flipped(drift_data: DriftData) -> Summary:
    """20,000 rows of 2018, labels flipped for ages 40 to 59."""
    target = drift_data.settings.data.target
    sample = drift_data.year(2018).sample(20_000, random_state=4)
    summary = compare(drift_data.reference, concept_flip(sample, target), drift_data.settings)
    _figures("concept flip", summary)
    return summary


@pytest.mark.parametrize("year", YEARS)
def test_stable_years_raise_no_alarm(stable: dict[int, Summary], year: int) -> None:
    summary = stable[year]
    assert summary.status == "ok"
    assert summary.data_drift.detected is False
    assert [c for c, v in summary.data_drift.columns.items() if v.detected] == []
    assert summary.prediction_drift.detected is False
    assert summary.label_drift.detected is False
    assert summary.concept_drift.detected is False
    assert summary.drift_detected is False


def test_large_windows_use_distances_not_p_values(stable: dict[int, Summary]) -> None:
    """With ~70k rows a chi-square test flags anything; Evidently's defaults switch."""
    methods = {v.method for v in stable[2016].data_drift.columns.values()}
    assert methods == {"Wasserstein distance (normed)", "Jensen-Shannon distance"}


def test_covariate_shift_is_caught_on_exactly_the_shifted_columns(shifted: Summary) -> None:
    drifted = {c for c, v in shifted.data_drift.columns.items() if v.detected}
    assert drifted == {"AGEP", "MAR"}
    assert shifted.data_drift.detected is True
    assert shifted.data_drift.share == pytest.approx(2 / 16)
    assert shifted.drift_detected is True


def test_unlabeled_window_gets_no_concept_verdict(shifted: Summary) -> None:
    assert shifted.rows.labeled == 0
    assert shifted.concept_drift.detected is None
    assert shifted.concept_drift.p_value is None
    assert shifted.label_drift.detected is None
    assert "performance" not in shifted.snapshots


def test_concept_flip_is_concept_drift_not_data_drift(flipped: Summary) -> None:
    concept = flipped.concept_drift
    assert concept.detected is True
    assert concept.p_value is not None and concept.p_value < concept.alpha
    assert concept.drop is not None and concept.drop >= concept.min_drop
    assert concept.reference is not None and concept.current is not None
    assert concept.drop == pytest.approx(concept.reference - concept.current)
    assert flipped.data_drift.detected is False
    assert flipped.prediction_drift.detected is False
    assert set(flipped.snapshots) == {"report", "performance"}


def test_summary_has_the_design_keys(stable: dict[int, Summary]) -> None:
    dumped = stable[2017].model_dump(mode="json")
    for key, inner in DESIGN_KEYS.items():
        assert key in dumped
        if inner is not None:
            assert inner <= set(dumped[key]), key
    column = dumped["data_drift"]["columns"]["AGEP"]
    assert set(column) == {"method", "score", "threshold", "detected"}
    assert dumped["model"]["name"] == "employment-classifier"


def test_too_few_rows_is_insufficient_data_without_verdicts(drift_data: DriftData) -> None:
    current = drift_data.year(2016).head(drift_data.settings.drift.min_rows - 1)
    summary = compare(drift_data.reference, current, drift_data.settings)
    assert summary.status == "insufficient_data"
    assert summary.rows.current == drift_data.settings.drift.min_rows - 1
    for section in (summary.data_drift, summary.prediction_drift, summary.concept_drift):
        assert section.detected is None
    assert summary.drift_detected is False
    assert summary.snapshots == {}


def test_small_labeled_window_is_not_concept_drift(drift_data: DriftData) -> None:
    """300 labeled rows of a stable year: noise must not reach the alarm."""
    current = drift_data.year(2016).sample(1000, random_state=1)
    current.loc[current.index[300:], drift_data.settings.data.target] = None
    summary = compare(drift_data.reference, current, drift_data.settings)
    assert summary.status == "ok"
    assert summary.concept_drift.detected is False
    assert summary.concept_drift.labeled_rows == 300


def test_too_few_labels_means_no_concept_verdict(drift_data: DriftData) -> None:
    current = drift_data.year(2016).sample(1000, random_state=2)
    current.loc[current.index[50:], drift_data.settings.data.target] = None
    summary = compare(drift_data.reference, current, drift_data.settings)
    assert summary.rows.labeled == 50
    assert summary.data_drift.detected is False
    assert summary.concept_drift.detected is None
    assert summary.label_drift.detected is None


def test_missing_feature_column_is_named(drift_data: DriftData) -> None:
    current = drift_data.year(2016).head(500).drop(columns=["AGEP", "SEX"])
    with pytest.raises(SchemaError, match="AGEP, SEX"):
        compare(drift_data.reference, current, drift_data.settings)


def test_unknown_column_is_named(drift_data: DriftData) -> None:
    current = drift_data.year(2016).head(500).assign(income=1.0)
    with pytest.raises(SchemaError, match="income"):
        compare(drift_data.reference, current, drift_data.settings)


def test_missing_predictions_are_named(drift_data: DriftData) -> None:
    current = drift_data.year(2016).head(500).drop(columns=["proba_1"])
    with pytest.raises(SchemaError, match="proba_1"):
        compare(drift_data.reference, current, drift_data.settings)


def test_wrong_feature_type_is_named(drift_data: DriftData) -> None:
    current = drift_data.year(2016).head(500).assign(AGEP="old")
    with pytest.raises(SchemaError, match="AGEP"):
        compare(drift_data.reference, current, drift_data.settings)


def test_roc_auc_matches_scikit_learn() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.random(2000) < 0.4
    score = np.round(rng.random(2000) + 0.3 * y, 2)  # ties on purpose
    ranks = np.unique(score, return_inverse=True)[1]
    assert roc_auc(y, ranks, np.ones(len(y))) == pytest.approx(roc_auc_score(y, score))


def test_bootstrap_p_value_separates_a_drop_from_noise() -> None:
    rng = np.random.default_rng(1)

    def sample(n: int, flip: float) -> tuple[np.ndarray, np.ndarray]:
        y = rng.random(n) < 0.5
        predicted = np.where(rng.random(n) < flip, ~y, y)
        return y, predicted

    def accuracy(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
        return float(np.sum(w * (y == p)) / np.sum(w))

    reference = sample(5000, 0.1)
    _, _, same = performance_test(reference, sample(5000, 0.1), accuracy, 300, 0)
    ref, cur, worse = performance_test(reference, sample(5000, 0.2), accuracy, 300, 0)
    assert same > 0.01
    assert worse == pytest.approx(1 / 301)
    assert ref - cur == pytest.approx(0.1, abs=0.02)


def test_frames_are_not_modified(drift_data: DriftData) -> None:
    current = drift_data.year(2016).head(100)
    before = current.copy()
    compare(drift_data.reference, current, drift_data.settings)
    pd.testing.assert_frame_equal(current, before)


def test_per_column_method_and_threshold_come_from_params(drift_data: DriftData) -> None:
    from pipeline.settings import ColumnDrift

    drift = drift_data.settings.drift.model_copy(
        update={"columns": {"AGEP": ColumnDrift(method="ks", threshold=0.001)}}
    )
    settings = drift_data.settings.model_copy(update={"drift": drift})
    summary = compare(drift_data.reference, drift_data.year(2016).head(2000), settings)
    agep = summary.data_drift.columns["AGEP"]
    assert (agep.method, agep.threshold) == ("K-S p_value", 0.001)
    assert summary.data_drift.columns["SEX"].method == "Jensen-Shannon distance"


def test_drift_columns_must_be_features(drift_data: DriftData) -> None:
    from pipeline.settings import ColumnDrift

    drift = drift_data.settings.drift.model_copy(update={"columns": {"income": ColumnDrift()}})
    settings = drift_data.settings.model_copy(update={"drift": drift})
    with pytest.raises(SchemaError, match="income"):
        compare(drift_data.reference, drift_data.year(2016).head(500), settings)


def test_unknown_drift_method_is_named(drift_data: DriftData) -> None:
    drift = drift_data.settings.drift.model_copy(update={"method": "eyeball"})
    settings = drift_data.settings.model_copy(update={"drift": drift})
    with pytest.raises(SchemaError, match="drift.method: 'eyeball'"):
        compare(drift_data.reference, drift_data.year(2016).head(50), settings)
