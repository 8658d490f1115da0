"""The detection benchmark's shift injectors (testbeds/shifts.py) keep what they must, on
rows of the project's own data: a correlation flip keeps every marginal exactly, a mean
shift moves the mean by the stated σ, a frequency change moves the stated points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from pipeline.labels import normalize_labels
from pipeline.schema import coerce_features
from pipeline.settings import load_settings
from testbeds import shifts
from testbeds.drift_data import RAW


@pytest.fixture(scope="module")
def window() -> pd.DataFrame:
    """2,000 rows of 2015 as a window holds them: plain feature dtypes and the label."""
    data = load_settings().data
    raw = pd.read_parquet(RAW / "reference_2015.parquet").sample(2000, random_state=3)
    frame = coerce_features(raw, data)
    frame[data.target] = normalize_labels(raw[data.target]).to_numpy()
    return frame.reset_index(drop=True)


def test_a_correlation_flip_keeps_every_marginal_and_reverses_the_pairing(
    window: pd.DataFrame,
) -> None:
    before = window.copy()
    flipped = shifts.flip_pairing(window, "SCHL", np.random.default_rng(0))
    pd.testing.assert_frame_equal(window, before)  # the input is left alone
    for column in window.columns:
        assert sorted(flipped[column]) == sorted(window[column]), column
    pd.testing.assert_frame_equal(flipped.drop(columns="SCHL"), window.drop(columns="SCHL"))
    assert flipped["SCHL"].dtype == window["SCHL"].dtype
    codes, flipped_codes = (pd.to_numeric(f["SCHL"]) for f in (window, flipped))
    was = spearmanr(window["AGEP"], codes).statistic
    now = spearmanr(window["AGEP"], flipped_codes).statistic
    assert was > 0.3 and now < -0.3, (was, now)
    # Reversed rank order: a row holding a higher code than another now holds a lower one.
    high, low = codes.idxmax(), codes.idxmin()
    assert flipped_codes[high] == codes.min() and flipped_codes[low] == codes.max()


@pytest.mark.parametrize("sigmas", [0.1, 0.25, 0.5])
def test_a_mean_shift_moves_the_mean_by_the_stated_sigmas(
    window: pd.DataFrame, sigmas: float
) -> None:
    sigma = float(window["AGEP"].std())
    shifted = shifts.mean_shift(window, "AGEP", sigmas, sigma)
    assert shifted["AGEP"].mean() - window["AGEP"].mean() == pytest.approx(sigmas * sigma)
    assert shifted["AGEP"].std() == pytest.approx(sigma)
    pd.testing.assert_frame_equal(shifted.drop(columns="AGEP"), window.drop(columns="AGEP"))


def test_a_scale_change_keeps_the_mean_and_stretches_the_spread(window: pd.DataFrame) -> None:
    scaled = shifts.scale(window, "AGEP", 1.5)
    assert scaled["AGEP"].mean() == pytest.approx(window["AGEP"].mean())
    assert scaled["AGEP"].std() == pytest.approx(1.5 * window["AGEP"].std())


@pytest.mark.parametrize("points", [10, 25])
def test_a_frequency_change_moves_the_stated_points(window: pd.DataFrame, points: int) -> None:
    before = window["MAR"].value_counts(normalize=True)
    changed = shifts.frequency(window, "MAR", "5", points, np.random.default_rng(1))
    after = changed["MAR"].value_counts(normalize=True)
    assert (after["5"] - before["5"]) * 100 == pytest.approx(points)
    assert all(after.get(c, 0.0) <= before[c] for c in before.index if c != "5")
    assert changed["MAR"].dtype == window["MAR"].dtype
    pd.testing.assert_frame_equal(changed.drop(columns="MAR"), window.drop(columns="MAR"))


def test_a_label_flip_swaps_the_classes_on_the_subpopulation_only(window: pd.DataFrame) -> None:
    where = window["AGEP"].between(40, 59)
    flipped = shifts.flip_labels(window, "employed", where, ("0", "1"))
    assert (flipped.loc[where, "employed"] != window.loc[where, "employed"]).all()
    assert flipped.loc[~where, "employed"].equals(window.loc[~where, "employed"])
    assert set(flipped["employed"]) == {"0", "1"}


def test_impossible_shifts_name_what_is_wrong(window: pd.DataFrame) -> None:
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="MAR: .* rows would move to '5'"):
        shifts.frequency(window, "MAR", "5", 90, rng)
    holed = window.astype({"AGEP": float})
    holed.loc[0, "AGEP"] = np.nan
    with pytest.raises(ValueError, match="AGEP: missing values"):
        shifts.flip_pairing(holed, "AGEP", rng)
    with pytest.raises(ValueError, match=r"employed: labels \['0', '1'\] are not in"):
        shifts.flip_labels(window, "employed", window["AGEP"] > 0, ("yes", "no"))
