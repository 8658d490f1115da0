"""``compare`` on the shipped data: the stable years stay quiet, injected drift is caught,
and each kind of change gets its own verdict: a shift of the feature the model relies on
is data drift, a subpopulation the model serves worse is a performance drop without
concept drift, flipped labels are concept drift, an emptied column is a missing-value
verdict.

Each Evidently run on a full year takes seconds, so every comparison is computed once
(module-scoped) and several tests read it. The figures are printed with ``-s``.
"""

from __future__ import annotations

import pandas as pd
import pytest

from monitoring.drift import compare, importance_weights
from monitoring.drift_summary import Summary
from pipeline.schema import SchemaError
from tests.monitoring.conftest import (
    YEARS,
    DriftData,
    concept_flip,
    covariate_shift,
    score,
)

pytestmark = pytest.mark.slow

DESIGN_KEYS = {
    "status": None,
    "rows": {"reference", "current", "labeled"},
    "data_drift": {"detected", "share", "weighted_share", "columns"},
    "prediction_drift": {"detected", "method", "score"},
    "performance": {
        "metric",
        "reference",
        "estimated",
        "realized",
        "lower_threshold",
        "drop_detected",
        "estimated_drop_detected",
    },
    "concept_drift": {
        "detected",
        "metric",
        "reference",
        "current",
        "estimated",
        "drop",
        "p_value",
        "labeled_rows",
    },
    "label_drift": {"detected", "method", "score"},
    "data_quality": {"detected", "columns"},
    "model": {"name", "version"},
}


def _figures(name: str, summary: Summary) -> None:
    data, concept, performance = summary.data_drift, summary.concept_drift, summary.performance
    scores = {c: round(v.score, 4) for c, v in data.columns.items()}
    print(
        f"\n{name}: data drift {data.detected} share {data.share} weighted "
        f"{data.weighted_share}; scores {scores}; prediction {summary.prediction_drift.score}; "
        f"label {summary.label_drift.score}; performance {performance.detected} "
        f"{performance.metric} reference {performance.reference} estimated "
        f"{performance.estimated} realized {performance.realized} lower "
        f"{performance.lower_threshold} p {performance.p_value}; concept {concept.detected} "
        f"gap {concept.gap} > {concept.gap_threshold} p {concept.p_value}"
    )


def judge(drift_data: DriftData, current: pd.DataFrame, name: str = "") -> Summary:
    """``compare`` with the model's importance, as the drift job calls it."""
    summary = compare(
        drift_data.reference, current, drift_data.settings, importance=drift_data.importance
    )
    if name:
        _figures(name, summary)
    return summary


@pytest.fixture(scope="module")
def stable(drift_data: DriftData) -> dict[int, Summary]:
    return {year: judge(drift_data, drift_data.year(year), str(year)) for year in YEARS}


@pytest.fixture(scope="module")
def shifted(drift_data: DriftData) -> Summary:
    """20,000 rows of 2017 with older ages and more never-married people; no labels yet."""
    sample = drift_data.year(2017).sample(20_000, random_state=3)
    current = covariate_shift(sample).drop(columns=drift_data.settings.data.target)
    return judge(drift_data, current, "covariate shift")


@pytest.fixture(scope="module")
def flipped(drift_data: DriftData) -> Summary:
    """20,000 rows of 2018, labels flipped for ages 40 to 59."""
    target = drift_data.settings.data.target
    sample = drift_data.year(2018).sample(20_000, random_state=4)
    return judge(drift_data, concept_flip(sample, target), "concept flip")


@pytest.fixture(scope="module")
def older(drift_data: DriftData) -> pd.DataFrame:
    """20,000 rows of 2017, every age 12 years older, scored by the model; no labels."""
    settings = drift_data.settings
    rows = drift_data.year(2017).sample(20_000, random_state=5).drop(columns=settings.data.target)
    return score(drift_data.model, rows.assign(AGEP=rows["AGEP"] + 12), settings)


@pytest.fixture(scope="module")
def aged(drift_data: DriftData, older: pd.DataFrame) -> Summary:
    return judge(drift_data, older, "AGEP + 12")


@pytest.fixture(scope="module")
def over_55(drift_data: DriftData) -> Summary:
    """The 2017 rows of people aged 55 and over, labels as observed: P(y|x) untouched."""
    year = drift_data.year(2017)
    return judge(drift_data, year[year["AGEP"] >= 55], "2017 aged 55+")


@pytest.mark.parametrize("year", YEARS)
def test_stable_years_raise_no_alarm(stable: dict[int, Summary], year: int) -> None:
    summary = stable[year]
    assert summary.status == "ok"
    assert summary.data_drift.detected is False
    assert [c for c, v in summary.data_drift.columns.items() if v.detected] == []
    assert summary.prediction_drift.detected is False
    assert summary.label_drift.detected is False
    assert summary.performance.detected is False
    assert summary.performance.estimated_drop_detected is False
    assert summary.performance.drop_detected is False
    assert summary.concept_drift.detected is False
    assert summary.data_quality.detected is False
    assert summary.drift_detected is False


def test_a_shift_of_the_feature_the_model_relies_on_is_data_drift(aged: Summary) -> None:
    """AGEP is one column of 16 (share 1/16 < drift_share) but carries most importance."""
    data = aged.data_drift
    assert {c for c, v in data.columns.items() if v.detected} == {"AGEP"}
    assert data.share == pytest.approx(1 / 16)
    assert data.share < data.drift_share
    assert data.weights == "importance"
    assert data.weighted_share is not None and data.weighted_share >= data.drift_share
    assert data.weighted_share == pytest.approx(data.columns["AGEP"].importance)
    assert data.detected is True
    assert sum(v.importance or 0 for v in data.columns.values()) == pytest.approx(1.0)


def test_unlabeled_window_gets_a_performance_estimate(aged: Summary) -> None:
    performance = aged.performance
    assert aged.rows.labeled == 0
    assert performance.estimated is not None and performance.reference is not None
    assert performance.lower_threshold is not None
    assert performance.lower_threshold < performance.reference
    assert performance.realized is None and performance.drop_detected is None
    assert performance.estimated_drop_detected is not None
    assert performance.detected == performance.estimated_drop_detected
    assert aged.concept_drift.detected is None


def test_without_importance_one_column_of_sixteen_is_not_dataset_drift(
    drift_data: DriftData, older: pd.DataFrame
) -> None:
    """The failure path: no importance file means equal weights, and the old verdict."""
    summary = compare(drift_data.reference, older, drift_data.settings)
    assert summary.data_drift.weights == "uniform"
    assert summary.data_drift.columns["AGEP"].detected is True
    assert summary.data_drift.weighted_share == pytest.approx(1 / 16)
    assert summary.data_drift.detected is False
    assert summary.data_drift.columns["AGEP"].importance is None


def test_importance_weights_ignore_negative_importance() -> None:
    features = ["a", "b", "c"]
    assert importance_weights({"a": 3.0, "b": 1.0, "c": -2.0}, features) == {
        "a": 0.75,
        "b": 0.25,
        "c": 0.0,
    }
    assert importance_weights({"a": -1.0, "b": 0.0}, features) is None
    assert importance_weights(None, features) is None


def test_a_subpopulation_served_worse_is_a_drop_not_concept_drift(over_55: Summary) -> None:
    """Older people are harder to predict: a real drop, estimated as well as realized, that
    covariate shift explains; P(y|x) is as observed, so no concept drift."""
    performance = over_55.performance
    assert over_55.data_drift.detected is True
    assert performance.drop_detected is True
    assert performance.detected is True
    assert performance.estimated_drop_detected is True
    assert performance.realized is not None and performance.reference is not None
    assert performance.realized < performance.lower_threshold < performance.reference
    assert over_55.concept_drift.detected is False


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
    assert concept.estimated is not None and concept.gap is not None
    assert concept.gap == pytest.approx(concept.estimated - concept.current)
    assert concept.gap_threshold is not None and concept.gap > concept.gap_threshold
    # The inputs did not move, so neither did the estimate: only the labels say it.
    assert flipped.performance.estimated_drop_detected is False
    assert flipped.performance.drop_detected is True
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
    assert set(column) == {
        "method",
        "score",
        "threshold",
        "detected",
        "calibrated",
        "p_value",
        "importance",
        "missing_share",
    }
    assert column["calibrated"] is True
    assert 0 < column["p_value"] <= 1
    assert dumped["model"]["name"] == "employment-classifier"


def test_too_few_rows_is_insufficient_data_without_verdicts(drift_data: DriftData) -> None:
    current = drift_data.year(2016).head(drift_data.settings.drift.min_rows - 1)
    summary = compare(drift_data.reference, current, drift_data.settings)
    assert summary.status == "insufficient_data"
    assert summary.rows.current == drift_data.settings.drift.min_rows - 1
    for section in (
        summary.data_drift,
        summary.prediction_drift,
        summary.performance,
        summary.concept_drift,
        summary.data_quality,
    ):
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
    assert summary.performance.detected is False
    assert summary.performance.realized is not None
    # The threshold widens with fewer rows: 300 labeled rows get a lower bar than 1,000.
    assert summary.performance.labeled_lower_threshold is not None
    assert summary.performance.lower_threshold is not None
    assert summary.performance.labeled_lower_threshold < summary.performance.lower_threshold


def test_too_few_labels_means_no_concept_verdict(drift_data: DriftData) -> None:
    current = drift_data.year(2016).sample(1000, random_state=2)
    current.loc[current.index[50:], drift_data.settings.data.target] = None
    summary = compare(drift_data.reference, current, drift_data.settings)
    assert summary.rows.labeled == 50
    assert summary.data_drift.detected is False
    assert summary.concept_drift.detected is None
    assert summary.label_drift.detected is None
    assert summary.performance.realized is None
    assert summary.performance.estimated is not None


def test_an_emptied_column_is_a_missing_value_verdict_not_an_error(
    drift_data: DriftData,
) -> None:
    """SCHL arrives all null (an upstream break): Evidently cannot take the column, the
    run still judges every other one and names SCHL."""
    settings = drift_data.settings
    rows = drift_data.year(2016).sample(2000, random_state=6)
    current = score(drift_data.model, rows.assign(SCHL=None), settings)
    summary = judge(drift_data, current)
    assert summary.status == "ok"
    quality = summary.data_quality
    assert quality.detected is True
    assert [c for c, v in quality.columns.items() if v.detected] == ["SCHL"]
    assert quality.columns["SCHL"].current == 1.0
    schl = summary.data_drift.columns["SCHL"]
    assert (schl.method, schl.detected, schl.missing_share) == ("missing values", True, 1.0)
    assert summary.data_drift.columns["AGEP"].method == "Wasserstein distance (normed)"
    assert summary.drift_detected is True


def test_a_few_missing_values_are_not_a_verdict(drift_data: DriftData) -> None:
    current = drift_data.year(2016).sample(2000, random_state=7)
    current.loc[current.index[:40], "MAR"] = None  # 2%, under drift.max_missing_increase
    summary = judge(drift_data, current)
    assert summary.data_quality.detected is False
    assert summary.data_quality.columns["MAR"].current == pytest.approx(0.02)
    assert summary.data_drift.columns["MAR"].missing_share == pytest.approx(0.02)


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
