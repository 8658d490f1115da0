"""The compiled input path gives the model's own probabilities, and anything it does not
cover is scored by the model's pipeline on a pandas frame instead."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OrdinalEncoder

from monitoring.capture import PREDICTIONS, CaptureWriter, ScoredBatch, read_kind
from pipeline.model import build_model
from pipeline.prepare import prepare
from pipeline.settings import Settings, load_settings
from serving import scoring
from serving.scoring import NotCompiled, Scorer, compile_input, frame, prepare_scorer, verify

TRAIN_ROWS = 8_000  # a sample of the training split keeps three fits quick
TOLERANCE = 1e-6
ESTIMATORS = ("hist_gradient_boosting", "logistic_regression", "random_forest")
DAY = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="module")
def split(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = pd.read_parquet(settings.path(settings.data.path))
    train, test = prepare(raw, settings.data)
    return train.sample(n=TRAIN_ROWS, random_state=0), test


def fit(settings: Settings, train: pd.DataFrame, estimator: str) -> Pipeline:
    features = settings.data.features
    chosen = settings.train.model_copy(update={"estimator": estimator})
    model = build_model(features, chosen, settings.data.seed)
    return model.fit(train[features.all], train[settings.data.target])


def service_rows(test: pd.DataFrame, settings: Settings) -> list[dict[str, Any]]:
    """The whole test split as the service hands rows to the model (floats, category
    strings, None), with missing values and unseen categories put in on a fixed pattern."""
    features = settings.data.features
    table = test[features.all].astype(object)
    rows: list[dict[str, Any]] = table.where(table.notna(), None).to_dict("records")
    for index, row in enumerate(rows):
        for j, column in enumerate(features.all):
            if (index + j) % 11 == 0:
                row[column] = None
            elif column in features.categorical and (index + j) % 17 == 0:
                row[column] = f"unseen-{index % 3}"
    return rows


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_compiled_path_equals_predict_proba_on_the_whole_test_split(
    settings: Settings, split: tuple[pd.DataFrame, pd.DataFrame], estimator: str
) -> None:
    train, test = split
    model = fit(settings, train, estimator)
    scorer = prepare_scorer(model, settings)
    assert scorer.compiled is not None, scorer.reason
    # the boosted model's trees are walked with numpy (serving/trees.py), the others score
    # the compiled matrix themselves
    assert (scorer.compiled.trees is not None) == (estimator == "hist_gradient_boosting")
    rows = service_rows(test, settings)
    features = settings.data.features
    assert len(rows) == len(test) > 10_000
    assert sum(r["AGEP"] is None for r in rows) > 1000
    assert sum(str(r["SCHL"]).startswith("unseen") for r in rows) > 500
    expected = model.predict_proba(frame(rows, features.all, features.numerical))
    got = scorer.predict_proba(rows)
    assert got.shape == expected.shape
    assert float(np.max(np.abs(got - expected))) <= TOLERANCE
    # one row at a time too (a one-row client's call), on a slice of the split
    for row, want in zip(rows[:50], expected[:50], strict=True):
        assert float(np.max(np.abs(scorer.predict_proba([row])[0] - want))) <= TOLERANCE


@pytest.fixture(scope="module")
def boosted(settings: Settings, split: tuple[pd.DataFrame, pd.DataFrame]) -> Pipeline:
    return fit(settings, split[0], "hist_gradient_boosting")


def other_shape(settings: Settings, train: pd.DataFrame) -> Pipeline:
    """Ordinal codes instead of one-hot: a pipeline the compiled path does not cover."""
    features = settings.data.features
    categorical = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="__missing__"),
        OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
    )
    columns = ColumnTransformer(
        [
            ("numerical", SimpleImputer(strategy="median"), features.numerical),
            ("categorical", categorical, features.categorical),
        ]
    )
    estimator = build_model(features, settings.train, 0).steps[-1][1]
    model = Pipeline([("features", columns), ("estimator", estimator)])
    return model.fit(train[features.all], train[settings.data.target])


def test_a_pipeline_of_another_shape_is_scored_by_the_model_itself(
    settings: Settings,
    split: tuple[pd.DataFrame, pd.DataFrame],
    caplog: pytest.LogCaptureFixture,
) -> None:
    train, test = split
    model = other_shape(settings, train)
    with pytest.raises(NotCompiled, match="OrdinalEncoder"):
        compile_input(model, settings)
    with caplog.at_level(logging.WARNING, logger=scoring.__name__):
        scorer = prepare_scorer(model, settings)
    assert scorer.compiled is None and "OrdinalEncoder" in scorer.reason
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "not compiled" in caplog.records[0].getMessage()
    rows = service_rows(test.head(500), settings)
    features = settings.data.features
    expected = model.predict_proba(frame(rows, features.all, features.numerical))
    np.testing.assert_array_equal(scorer.predict_proba(rows), expected)


def test_a_compiled_path_that_disagrees_with_the_model_is_not_used(
    settings: Settings, boosted: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compiled path off by a shifted median for missing ages: verification sees it on
    the check rows and the model's own pipeline serves."""
    compiled = compile_input(boosted, settings)
    verify(compiled, boosted, settings)  # the real one passes
    (numbers,) = compiled.numbers
    wrong = dataclasses.replace(
        compiled, numbers=[dataclasses.replace(numbers, fill=numbers.fill + 30.0)]
    )
    with pytest.raises(NotCompiled, match="differ from predict_proba"):
        verify(wrong, boosted, settings)
    monkeypatch.setattr(scoring, "compile_input", lambda model, settings: wrong)
    scorer = prepare_scorer(boosted, settings)
    assert scorer.compiled is None and "differ from predict_proba" in scorer.reason


def test_check_rows_reach_every_category_missing_values_and_an_unknown(
    settings: Settings, boosted: Pipeline
) -> None:
    compiled = compile_input(boosted, settings)
    rows = scoring.check_rows(compiled, settings)
    assert rows == scoring.check_rows(compiled, settings)  # deterministic
    for encoded in compiled.categories:
        for column, known in zip(encoded.columns, encoded.categories, strict=True):
            seen = {r[column] for r in rows}
            assert {str(v) for v in known} <= seen
            assert None in seen and scoring.UNKNOWN_CATEGORY in seen
    assert any(r["AGEP"] is None for r in rows)
    low, high = settings.data.ranges["AGEP"]
    assert all(low <= r["AGEP"] <= high for r in rows if r["AGEP"] is not None)


def test_switched_off_in_params_the_model_scores_its_own_frames(
    settings: Settings, boosted: Pipeline
) -> None:
    off = settings.model_copy(
        update={"serving": settings.serving.model_copy(update={"compiled_inputs": False})}
    )
    scorer = prepare_scorer(boosted, off)
    assert isinstance(scorer, Scorer) and scorer.compiled is None
    assert scorer.reason == "serving.compiled_inputs is false"


def test_the_features_as_blocks_are_captured_as_the_rows_are(
    tmp_path: Path, settings: Settings, split: tuple[pd.DataFrame, pd.DataFrame], boosted: Pipeline
) -> None:
    """The compiled path's number block and category codes, written to the capture log,
    store what the rows themselves store; a batch with a category the model never saw is
    written from its rows. The frame path has no blocks."""
    scorer = prepare_scorer(boosted, settings)
    rows = service_rows(split[1].head(2_000), settings)
    for row in rows[:1_000]:  # no unseen category in the first half's batches
        row.update({k: None for k, v in row.items() if str(v).startswith("unseen")})
    features = settings.data.features
    logs = {}
    coded = 0
    for way in ("blocks", "rows"):
        live = CaptureWriter(
            tmp_path / way, segments=tmp_path / f"{way}-segments", numerical=features.numerical
        )
        for start in range(0, len(rows), 40):
            batch = rows[start : start + 40]
            output, blocks = scorer.scored(batch, regressor=False)
            np.testing.assert_array_equal(output, scorer.predict_proba(batch))
            assert blocks is not None and blocks.numbers.shape == (len(features.numerical), 40)
            coded += way == "blocks" and int(blocks.codes.min()) >= 0
            live.add(
                PREDICTIONS,
                ScoredBatch(
                    DAY, "m", "1", [f"r{start + i}" for i in range(len(batch))], batch,
                    ["0"] * len(batch), output, ["proba_0", "proba_1"],
                    blocks if way == "blocks" else None,
                ),
            )  # fmt: skip
        live.close()
        logs[way] = read_kind(tmp_path / way, PREDICTIONS)
    pd.testing.assert_frame_equal(logs["blocks"], logs["rows"])
    assert len(logs["rows"]) == len(rows) and coded > 5
    assert logs["rows"]["SCHL"].isna().sum() > 50
    plain = dataclasses.replace(scorer, compiled=None)
    assert plain.scored(rows[:3], regressor=False)[1] is None
