"""The domain classifier (monitoring/multivariate.py) on the employment data: it finds a
correlation flip no column test sees, leaves a stable window alone, reads its band from the
cache, and says why when a window is too small to judge.

The reference is the drift fixtures' (the 2015 test split, in its shuffled order); the
current windows are held-out rows of it, so a stable window is stable by construction.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring import drift_page, multivariate
from monitoring.drift import compare
from monitoring.drift_summary import MultivariateDrift, RetrainOn, Section, Summary
from pipeline.schema import SchemaError
from pipeline.settings import Settings
from tests.monitoring.conftest import DriftData

HELD_OUT = 3000  # rows of the reference kept out of it: the current windows


@pytest.fixture(scope="module")
def split(drift_data: DriftData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reference without its last rows, and those rows."""
    reference = drift_data.reference.reset_index(drop=True)
    return reference.iloc[:-HELD_OUT].reset_index(drop=True), reference.iloc[
        -HELD_OUT:
    ].reset_index(drop=True)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One calibration folder for the module: the flip and the stable window share a band."""
    return tmp_path_factory.mktemp("calibration")


def flip(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """``column``'s values paired in reverse rank order with the rows: its youngest row gets
    the oldest age and so on. Its values, and every other column, stay exactly as they were:
    only how ``column`` goes with the others turns round."""
    out = frame.copy()
    ranks = out[column].rank(method="first").to_numpy(dtype=int) - 1
    out[column] = np.sort(out[column].to_numpy())[::-1][ranks]
    return out


def features(frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    return frame[settings.data.features.all]


@pytest.fixture(scope="module")
def flipped(
    drift_data: DriftData, split: tuple[pd.DataFrame, pd.DataFrame], cache: Path
) -> Summary:
    reference, held_out = split
    window = flip(held_out, "AGEP")
    before = held_out["AGEP"].corr(held_out["SCHL"].astype(float))
    after = window["AGEP"].corr(window["SCHL"].astype(float))
    assert before > 0.3 and after < -0.3, (before, after)  # age and schooling, turned round
    pd.testing.assert_series_equal(
        window["AGEP"].sort_values(ignore_index=True),
        held_out["AGEP"].sort_values(ignore_index=True),
    )
    return compare(
        reference,
        window,
        drift_data.settings,
        importance=drift_data.importance,
        cache=cache,
    )


def test_a_correlation_flip_is_found_by_the_domain_classifier_alone(flipped: Summary) -> None:
    drifted = [c for c, v in flipped.data_drift.columns.items() if v.detected]
    assert drifted == [], "every column keeps its values exactly"
    assert flipped.data_drift.detected is False
    judged = flipped.multivariate
    assert judged.detected is True, judged
    assert judged.score is not None and judged.threshold is not None
    assert judged.score > judged.threshold > 0.5
    assert judged.p_value is not None and judged.p_value < 0.01
    assert judged.rows == HELD_OUT
    assert flipped.verdicts()[Section.MULTIVARIATE_DRIFT] is True
    assert flipped.drift_detected, "--fail-on-drift acts on it"
    assert flipped.triggers_retrain(RetrainOn.data), "--retrain-on data: any input shift"
    assert not flipped.triggers_retrain(RetrainOn.concept)


def test_the_page_and_summary_json_carry_the_verdict(
    drift_data: DriftData, flipped: Summary
) -> None:
    page = drift_page.section(flipped)
    assert "data-verdict='multivariate' data-state='found'" in page
    assert f"ROC AUC {flipped.multivariate.score:.4f}" in page
    figure = drift_page.multivariate_svg(flipped.multivariate)
    assert figure and figure in page
    assert figure.count("<circle") == len(flipped.multivariate.band)
    assert "fill='#c62828'" in figure, "the window's bar is red when drifted"
    assert drift_page.multivariate_svg(MultivariateDrift(note="too few rows")) == ""
    written = json.loads(flipped.model_dump_json())
    assert written["multivariate"]["method"] == "domain classifier"
    assert written["multivariate"]["band"] == flipped.multivariate.band
    assert len(flipped.multivariate.band) == drift_data.settings.drift.multivariate.chunks
    assert written["data_drift"]["detected"] is False  # the existing keys stay as they were


def test_a_stable_window_is_not_flagged(
    drift_data: DriftData, split: tuple[pd.DataFrame, pd.DataFrame], cache: Path, flipped: Summary
) -> None:
    reference, held_out = split
    settings = drift_data.settings
    judged = multivariate.judge(
        features(reference, settings), features(held_out, settings), settings, cache
    )
    assert judged.detected is False, judged
    assert judged.score is not None and judged.threshold is not None
    assert judged.score <= judged.threshold
    assert judged.band == flipped.multivariate.band, "the same reference and size bucket"


def test_the_band_is_read_from_the_cache(
    drift_data: DriftData, split: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    reference, held_out = split
    settings = drift_data.settings
    reference, window = (
        features(reference, settings).iloc[:6000],
        features(held_out, settings).iloc[:1000],
    )
    first = multivariate.judge(reference, window, settings, tmp_path)
    (kept,) = tmp_path.glob("multivariate-*.json")
    written = kept.stat().st_mtime_ns
    assert json.loads(kept.read_text())["value"]["aucs"] == first.band
    assert len(first.band) == settings.drift.multivariate.chunks

    second = multivariate.judge(reference, window, settings, tmp_path)
    assert second == first
    assert kept.stat().st_mtime_ns == written, "read, not written again"

    # A band the file alone holds: the next verdict is judged by it, so nothing was refit.
    stored = json.loads(kept.read_text())
    stored["value"]["aucs"] = [0.9, 0.92] * (settings.drift.multivariate.chunks // 2)
    kept.write_text(json.dumps(stored))
    third = multivariate.judge(reference, window, settings, tmp_path)
    assert third.band == stored["value"]["aucs"]
    assert third.band_mean == pytest.approx(0.91)
    assert third.score == first.score


def test_too_few_rows_is_no_verdict_and_says_why(
    drift_data: DriftData, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    reference, held_out = split
    settings = drift_data.settings
    folds = settings.drift.multivariate.folds
    for current in (
        features(held_out, settings).head(folds - 1),
        features(held_out, settings).head(0),
    ):
        judged = multivariate.judge(features(reference, settings), current, settings)
        assert judged.detected is None and judged.score is None
        assert judged.note is not None and "drift.multivariate.folds" in judged.note
        assert f"{len(current)} current" in judged.note
    tiny = multivariate.judge(
        features(reference, settings).head(folds), features(held_out, settings), settings
    )
    assert tiny.detected is None and tiny.note is not None and f"{folds} reference" in tiny.note


def test_empty_and_constant_columns_are_judged_without_error(
    drift_data: DriftData, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """AGEP empty and SEX constant on both sides: nothing there to tell the rows apart by."""
    reference, held_out = split
    settings = drift_data.settings

    def blank(frame: pd.DataFrame) -> pd.DataFrame:
        return features(frame, settings).assign(AGEP=np.nan, SEX="1")

    judged = multivariate.judge(blank(reference.iloc[:4000]), blank(held_out.iloc[:1000]), settings)
    assert judged.detected is False, judged
    emptied = features(held_out.iloc[:1000], settings).assign(SCHL=None)
    found = multivariate.judge(features(reference.iloc[:4000], settings), emptied, settings)
    assert found.detected is True, "a column that empties in the window tells its rows apart"


def test_a_missing_feature_column_is_named(
    drift_data: DriftData, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    reference, held_out = split
    settings = drift_data.settings
    with pytest.raises(SchemaError, match="current data is missing feature column.*SCHL"):
        multivariate.judge(
            features(reference, settings),
            features(held_out, settings).drop(columns="SCHL"),
            settings,
        )
