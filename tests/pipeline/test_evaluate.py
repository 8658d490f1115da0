"""The evaluate stage's core, ``evaluate``: metrics, plot points, the reference set and the
importance from a model and two splits, with no file read or written."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from pipeline.evaluate import evaluate
from pipeline.labels import normalize_labels
from pipeline.model import build_model
from pipeline.schema import PREDICTION, coerce_features, proba_columns
from pipeline.settings import PROJECT_ROOT, Settings, load_settings


@pytest.fixture(scope="module")
def settings() -> Settings:
    settings = load_settings()
    quick = settings.evaluate.model_copy(update={"importance_repeats": 1, "importance_rows": 300})
    return settings.model_copy(update={"evaluate": quick})


@pytest.fixture(scope="module")
def split(settings: Settings) -> tuple[Any, pd.DataFrame]:
    """A quick model from the project's factory, and 600 rows it did not see."""
    data = settings.data
    raw = pd.read_parquet(PROJECT_ROOT / "data" / "raw" / "reference_2015.parquet")
    raw = raw.sample(2600, random_state=0).reset_index(drop=True)
    frame = pd.concat([raw[[data.id]], coerce_features(raw, data)], axis=1)
    frame[data.target] = normalize_labels(raw[data.target])
    boosting = settings.train.hist_gradient_boosting.model_copy(update={"max_iter": 20})
    train = settings.train.model_copy(update={"hist_gradient_boosting": boosting})
    model = build_model(data.features, train, data.seed)
    model.fit(frame[data.features.all].iloc[:2000], frame[data.target].iloc[:2000])
    return model, frame.iloc[2000:].reset_index(drop=True)


def test_scores_the_test_split_and_stamps_the_reference(
    settings: Settings, split: tuple[Any, pd.DataFrame]
) -> None:
    model, test = split
    empty = test.iloc[:0]
    evaluation = evaluate(model, test, empty, settings, model_name="m", model_version="3")

    classes = evaluation.classes
    assert 0.5 < evaluation.metrics["roc_auc"] <= 1.0
    assert set(evaluation.metrics["per_class"]) == set(classes)
    assert evaluation.recent_metrics == {}
    assert set(evaluation.curves) == {"roc", "precision_recall", "confusion"}
    assert len(evaluation.curves["confusion"]) == len(test)
    reference = evaluation.reference
    assert len(reference) == len(test)
    assert {PREDICTION, *proba_columns(classes), *settings.data.features.all} <= set(reference)
    assert set(reference["model_name"]) == {"m"} and set(reference["model_version"]) == {"3"}
    assert set(evaluation.importance) == set(settings.data.features.all)


def test_the_recent_holdout_joins_the_reference_and_has_metrics_of_its_own(
    settings: Settings, split: tuple[Any, pd.DataFrame]
) -> None:
    model, test = split
    holdout = test.iloc[:100].drop(columns=[settings.data.id])  # recent rows carry no id
    evaluation = evaluate(model, test, holdout, settings, model_name="m", model_version="3")

    assert len(evaluation.reference) == len(test) + len(holdout)
    assert evaluation.reference[settings.data.id].isna().sum() == len(holdout)
    assert "recent_roc_auc" in evaluation.recent_metrics
    assert len(evaluation.curves["confusion"]) == len(test)  # metrics stay on the test split


def test_a_split_without_a_feature_is_an_error_naming_it(
    settings: Settings, split: tuple[Any, pd.DataFrame]
) -> None:
    model, test = split
    feature = settings.data.features.all[0]
    with pytest.raises(ValueError, match=f"test split has no column.*{feature}"):
        evaluate(
            model,
            test.drop(columns=[feature]),
            test.iloc[:0],
            settings,
            model_name="m",
            model_version="1",
        )
    holdout = test.iloc[:5].drop(columns=[settings.data.target])
    with pytest.raises(ValueError, match=f"recent hold-out has no column.*{settings.data.target}"):
        evaluate(model, test, holdout, settings, model_name="m", model_version="1")
