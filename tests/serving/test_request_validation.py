"""The input model built from params.yaml, and the category check against a fitted model."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from pipeline.model import build_model
from pipeline.settings import DataSettings, Settings, load_settings
from serving.inputs import as_rows, instance_model, known_categories, unknown_categories
from serving.service import EXAMPLE_INPUT
from serving.service_metrics import reason_of

ROW: dict[str, Any] = EXAMPLE_INPUT["instances"][0]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


def errors(data: DataSettings, body: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        instance_model(data).model_validate(body)
    return caught.value.errors(include_url=False, include_input=False)


def test_example_input_is_valid_and_codes_may_be_numbers(settings: Settings) -> None:
    model = instance_model(settings.data)
    rows = as_rows([model.model_validate({**ROW, "SCHL": 21, "AGEP": 46})], settings.data)
    assert rows[0]["SCHL"] == "21" and rows[0]["AGEP"] == 46.0
    assert rows[0].keys() == set(settings.data.features.all)


@pytest.mark.parametrize(
    ("change", "kind", "field"),
    [
        ({"AGEP": "46"}, "float_type", "AGEP"),
        ({"AGEP": True}, "float_type", "AGEP"),
        ({"AGEP": 500.0}, "less_than_equal", "AGEP"),
        ({"SCHL": 2.5}, "category_type", "SCHL"),
        ({"SCHL": ["21"]}, "category_type", "SCHL"),
        ({"colour": "red"}, "extra_forbidden", "colour"),
    ],
)
def test_each_bad_value_names_its_field(
    settings: Settings, change: dict[str, Any], kind: str, field: str
) -> None:
    (error,) = errors(settings.data, {**ROW, **change})
    assert error["type"] == kind
    assert error["loc"] == (field,)


def test_missing_feature_is_an_error_but_null_is_a_value(settings: Settings) -> None:
    body = {k: v for k, v in ROW.items() if k != "MAR"}
    (error,) = errors(settings.data, body)
    assert (error["type"], error["loc"]) == ("missing", ("MAR",))
    rows = as_rows(
        [instance_model(settings.data).model_validate({**ROW, "MAR": None})], settings.data
    )
    assert rows[0]["MAR"] is None


def test_any_column_name_works(settings: Settings) -> None:
    data = settings.data.model_copy(
        update={
            "features": settings.data.features.model_copy(
                update={"numerical": ["model_config"], "categorical": ["home town"]}
            ),
            "ranges": {},
        }
    )
    rows = as_rows(
        [instance_model(data).model_validate({"model_config": 1, "home town": "x"})], data
    )
    assert rows == [{"model_config": 1.0, "home town": "x"}]


def test_known_categories_come_from_the_fitted_encoder(settings: Settings) -> None:
    features = settings.data.features
    frame = pd.DataFrame([ROW, {**ROW, "SCHL": "16", "AGEP": 30.0}] * 10)
    target = pd.Series(["0", "1"] * 10)
    train = settings.train.model_copy(update={"estimator": "logistic_regression"})
    model = build_model(features, train, seed=0).fit(frame[features.all], target)

    known = known_categories(model, features.categorical)

    assert known["SCHL"] == {"21", "16"}
    found = unknown_categories([ROW, {**ROW, "SCHL": "99"}], known)
    assert found == [
        {
            "type": "unknown_category",
            "loc": ["instances", 1, "SCHL"],
            "msg": "unknown category '99' for 'SCHL' in row 1",
        }
    ]


@pytest.mark.parametrize(
    ("kind", "loc", "reason"),
    [
        ("json_invalid", ["body", 3], "malformed_json"),
        ("missing", ["instances", 0, "AGEP"], "missing_feature"),
        ("missing", ["instances"], "missing_field"),
        ("extra_forbidden", ["instances", 0, "x"], "extra_feature"),
        ("float_type", ["instances", 0, "AGEP"], "wrong_type"),
        ("too_long", ["instances"], "too_many_rows"),
        ("something_new", [], "invalid"),
    ],
)
def test_refusal_reasons_are_a_fixed_set(kind: str, loc: list[object], reason: str) -> None:
    assert reason_of(kind, loc) == reason
