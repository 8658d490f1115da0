"""How prepare folds the recent labeled rows of ``mlstack retrain`` into the training data."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.prepare import prepare, with_recent
from pipeline.schema import SchemaError
from pipeline.settings import load_settings
from tests.conftest import ROOT, employment_sample

SETTINGS = load_settings(ROOT / "params.yaml")


def recent_rows(rows: int) -> pd.DataFrame:
    """Production-like rows as the capture log holds them: request ids, string labels."""
    frame = employment_sample(rows, seed=5).drop(columns=["id"])
    frame["request_id"] = [f"r{i}" for i in range(rows)]
    frame[SETTINGS.data.target] = frame[SETTINGS.data.target].astype(str)
    return frame


def test_without_recent_rows_training_data_is_as_before() -> None:
    train, _ = prepare(employment_sample(2000), SETTINGS.data)
    folded, holdout = with_recent(train, pd.DataFrame(), SETTINGS.data, SETTINGS.retrain)
    assert folded is train
    assert holdout.empty


def test_recent_rows_are_split_and_the_held_out_ones_never_trained_on() -> None:
    train, _ = prepare(employment_sample(8000), SETTINGS.data)
    recent = recent_rows(1000)
    folded, holdout = with_recent(train, recent, SETTINGS.data, SETTINGS.retrain)
    retrain = SETTINGS.retrain
    assert len(holdout) == round(1000 * retrain.holdout)
    assert len(folded) == min(retrain.reference_rows, len(train)) + 1000 - len(holdout)
    features = SETTINGS.data.features.all
    assert list(folded.columns) == [*features, SETTINGS.data.target]
    assert set(holdout[SETTINGS.data.target]) == {"0", "1"}
    # the recent rows are partitioned: every one is either trained on or held out, once
    key = [*features, SETTINGS.data.target]
    trained = folded.tail(1000 - len(holdout))[key]
    both = pd.concat([trained, holdout[key]]).astype(str).sort_values(key).reset_index(drop=True)
    sent = recent[key].astype(str).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(both, sent)


def test_fewer_training_rows_than_reference_rows_keeps_them_all() -> None:
    train, _ = prepare(employment_sample(400), SETTINGS.data)
    folded, holdout = with_recent(train, recent_rows(300), SETTINGS.data, SETTINGS.retrain)
    assert len(folded) == len(train) + 300 - len(holdout)


def test_recent_rows_with_an_unknown_label_fail_naming_the_column() -> None:
    train, _ = prepare(employment_sample(400), SETTINGS.data)
    recent = recent_rows(100)
    recent.loc[0, SETTINGS.data.target] = "7"
    with pytest.raises(SchemaError, match="employed"):
        with_recent(train, recent, SETTINGS.data, SETTINGS.retrain)
