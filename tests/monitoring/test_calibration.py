"""Column thresholds calibrated on the reference, the larger reference, the dataset rule.

Real data (the 2015 reference period and the 2016-2018 years, ``testbeds.drift_data``),
real Evidently: the calibrated thresholds must hold the false alarms of windows drawn
from the reference period to ``drift.alpha``, still find a real shift smaller than
Evidently's fixed cut, agree with the distance Evidently reports, and be read back from
the cache instead of computed again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring import calibration
from monitoring.drift import compare, data_drift, drift_reference
from monitoring.drift_reports import stattest
from monitoring.drift_summary import ColumnVerdict, DataQuality, MissingValues
from pipeline.schema import SchemaError
from pipeline.settings import ColumnDrift, Settings
from testbeds.drift_data import DriftData

pytestmark = pytest.mark.slow


def _settings(drift_data: DriftData, **drift: object) -> Settings:
    return drift_data.settings.model_copy(
        update={"drift": drift_data.settings.drift.model_copy(update=drift)}
    )


@pytest.fixture(scope="module")
def period(drift_data: DriftData) -> pd.DataFrame:
    """The reference period as data drift sees it: the test split and the training rows."""
    settings = drift_data.settings
    ref = drift_data.reference[settings.data.features.all]
    return drift_reference(drift_data.reference, ref, drift_data.inputs, settings)


def test_the_shares_boundary_is_no_drift_and_just_above_it_is(drift_data: DriftData) -> None:
    settings = drift_data.settings
    features = settings.data.features.all
    share = settings.drift.drift_share
    quality = DataQuality(
        max_missing_increase=0.05,
        columns={c: MissingValues(reference=0.0, current=0.0, detected=False) for c in features},
    )
    verdicts = {
        c: ColumnVerdict(method="m", score=0.2, threshold=0.1, detected=c == "AGEP")
        for c in features
    }

    def weighted(agep: float) -> dict[str, float]:
        rest = (1 - agep) / (len(features) - 1)
        return {c: agep if c == "AGEP" else rest for c in features}

    at = data_drift(verdicts, quality, weighted(share), settings)
    assert at.weighted_share == pytest.approx(share)
    assert at.detected is False
    above = data_drift(verdicts, quality, weighted(share + 1e-6), settings)
    assert above.detected is True


def test_the_null_distance_is_the_distance_evidently_reports(period: pd.DataFrame) -> None:
    """The calibration's own distance on a split of the reference equals Evidently's
    Wasserstein (normed) and Jensen-Shannon of the same two parts."""
    part = 3_000
    for column, method, numerical in (
        ("AGEP", calibration.WASSERSTEIN, True),
        ("SCHL", calibration.JENSEN_SHANNON, False),
    ):
        codes, points = calibration._codes(period[column], numerical)
        total = np.bincount(codes[codes >= 0], minlength=len(points)).astype("float64")
        chunk = np.bincount(codes[:part][codes[:part] >= 0], minlength=len(points))
        mine = calibration._distance(method, chunk.astype("float64"), total - chunk, points)
        theirs = _score(period[column].iloc[part:], period[column].iloc[:part], method)
        assert mine == pytest.approx(theirs, rel=1e-9), column


def test_windows_of_the_reference_period_stay_within_alpha(drift_data: DriftData) -> None:
    """Calibrated on the training rows, 20 windows of the held-out test split at each size
    flag no column more than alpha allows (alpha 0.01 a window: expected 0.2 of 20)."""
    settings = drift_data.settings
    features = settings.data.features.all
    train = drift_data.inputs[features]
    held_out = drift_data.reference[features]
    rng = np.random.default_rng(7)
    flagged, thresholds = 0, {}
    for rows in (1_000, 2_000, 5_000):
        found = calibration.calibrate(train, rows, settings, features)
        assert set(found.thresholds) == set(features)
        thresholds[rows] = found.thresholds
        for _ in range(20):
            window = held_out.iloc[rng.choice(len(held_out), rows, replace=False)]
            for column in features:
                null = found.nulls[column]
                score = _score(train[column], window[column], null.method)
                flagged += score >= found.thresholds[column]
    assert flagged <= 2, f"{flagged} column alarms on 60 stable windows"
    noise = {c: thresholds[1_000][c] > thresholds[5_000][c] for c in features}
    # Fewer rows, more noise: a higher threshold, unless both sit on the floor.
    floor = settings.drift.calibration.min_distance
    assert all(ok or thresholds[1_000][c] == floor for c, ok in noise.items()), thresholds


def _score(reference: pd.Series, current: pd.Series, method: str) -> float:
    """Evidently's own distance, as its report computes it (missing values left out)."""
    from evidently import ColumnType

    numerical = method == calibration.WASSERSTEIN
    kind = ColumnType.Numerical if numerical else ColumnType.Categorical
    test = stattest(method, numerical)
    return float(test(reference.dropna(), current.dropna(), kind, 0.1).drift_score)


def test_a_shift_below_evidentlys_cut_is_found(drift_data: DriftData) -> None:
    """AGEP older by a fourteenth of its spread on 5,000 rows of 2016: a normed
    Wasserstein distance below Evidently's fixed 0.1, above the calibrated threshold."""
    settings = drift_data.settings
    year = drift_data.year(2016).sample(5_000, random_state=3)
    shift = drift_data.reference["AGEP"].std() / 14
    summary = compare(
        drift_data.reference,
        year.assign(AGEP=year["AGEP"] + shift),
        settings,
        importance=drift_data.importance,
        inputs=drift_data.inputs,
    )
    agep = summary.data_drift.columns["AGEP"]
    assert agep.calibrated is True
    assert agep.score < 0.1
    assert agep.detected is True, agep
    assert agep.p_value is not None and agep.p_value < settings.drift.alpha
    assert summary.data_drift.reference == "all"
    assert summary.data_drift.reference_rows == len(drift_data.reference) + len(drift_data.inputs)
    assert summary.data_drift.alpha == settings.drift.alpha


def test_named_methods_and_thresholds_are_not_calibrated(drift_data: DriftData) -> None:
    window = drift_data.year(2017).sample(2_000, random_state=2)
    fixed = compare(drift_data.reference, window, _settings(drift_data, threshold=0.2))
    assert {v.threshold for v in fixed.data_drift.columns.values()} == {0.2}
    assert not any(v.calibrated for v in fixed.data_drift.columns.values())
    assert fixed.data_drift.alpha is None
    one = _settings(drift_data, columns={"AGEP": ColumnDrift(threshold=0.3)})
    mixed = compare(drift_data.reference, window, one)
    assert mixed.data_drift.columns["AGEP"].threshold == 0.3
    assert mixed.data_drift.columns["AGEP"].calibrated is False
    assert mixed.data_drift.columns["SCHL"].calibrated is True


def test_training_rows_change_data_drift_only(drift_data: DriftData) -> None:
    """With the training rows the input distributions have 2x the reference rows; the
    prediction drift, judged on the test split's predictions only, is unchanged."""
    window = drift_data.year(2018).sample(2_000, random_state=5)
    both = compare(drift_data.reference, window, drift_data.settings, inputs=drift_data.inputs)
    test_only = compare(drift_data.reference, window, drift_data.settings)
    assert both.data_drift.reference == "all" and test_only.data_drift.reference == "test"
    for column, verdict in both.prediction_drift.columns.items():
        alone = test_only.prediction_drift.columns[column]
        assert verdict.score == pytest.approx(alone.score, rel=1e-9), column
        assert verdict.detected == alone.detected
    assert both.data_drift.columns["AGEP"].score != test_only.data_drift.columns["AGEP"].score
    chosen = _settings(drift_data, reference="test")
    ignored = compare(drift_data.reference, window, chosen, inputs=drift_data.inputs)
    assert ignored.data_drift.reference == "test"


def test_training_rows_without_a_feature_are_refused(drift_data: DriftData) -> None:
    window = drift_data.year(2018).sample(1_000, random_state=5)
    with pytest.raises(SchemaError, match="training inputs are missing feature column.*SCHL"):
        compare(
            drift_data.reference,
            window,
            drift_data.settings,
            inputs=drift_data.inputs.drop(columns="SCHL"),
        )


def test_the_calibration_is_read_back_and_a_bad_file_is_computed_again(
    drift_data: DriftData, period: pd.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = drift_data.settings
    features = settings.data.features.all
    first = calibration.calibrate(period, 2_000, settings, features, tmp_path)
    (kept,) = tmp_path.glob("columns-*.json")
    # A window of another size in the same bucket (1,722 to 2,047 rows) reads the same file.
    calibration.calibrate(period, 1_800, settings, features, tmp_path)
    assert list(tmp_path.glob("columns-*.json")) == [kept]
    # What the file says is what is used: widen AGEP's fitted spread, the threshold follows.
    payload = json.loads(kept.read_text())
    for fit in payload["value"]["AGEP"].values():
        fit["scale"] *= 4
    kept.write_text(json.dumps(payload))
    read = calibration.calibrate(period, 2_000, settings, features, tmp_path)
    assert read.thresholds["AGEP"] > first.thresholds["AGEP"]
    assert read.thresholds["SCHL"] == first.thresholds["SCHL"]
    kept.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="monitoring.calibration_cache"):
        again = calibration.calibrate(period, 2_000, settings, features, tmp_path)
    assert "recomputing unreadable" in caplog.text
    assert again.thresholds == first.thresholds
    assert json.loads(kept.read_text())["value"]  # written anew


def test_an_unwritable_cache_costs_only_time(
    drift_data: DriftData, period: pd.DataFrame, tmp_path: Path
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder should be")
    settings = drift_data.settings
    features = settings.data.features.all
    found = calibration.calibrate(period, 1_000, settings, features, blocked / "cache")
    assert set(found.thresholds) == set(features)
