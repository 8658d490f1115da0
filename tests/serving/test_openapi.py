"""The OpenAPI document's additions: the error answers, and the enums of the model served."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any, cast

from serving.champion import ServedModel
from serving.openapi import AcceptedInputs, with_error_responses


def spec() -> dict[str, Any]:
    """The parts of BentoML's document the additions touch."""
    return {
        "paths": {
            "/predict": {"post": {"requestBody": {}, "responses": {"200": {}}}},
            "/feedback": {"post": {"requestBody": {}, "responses": {"200": {}}}},
            "/livez": {"get": {"responses": {"200": {}}}},
        },
        "components": {
            "schemas": {
                "Instance": {"properties": {"SCHL": {"type": "string"}, "AGEP": {}}},
                "LabelIn": {"properties": {"label": {}, "request_id": {}}},
            }
        },
    }


def served(classes: list[str], known: dict[str, frozenset[str]]) -> ServedModel:
    return cast(ServedModel, SimpleNamespace(classes=classes, known=known))


def test_error_answers_are_declared_per_route() -> None:
    document = with_error_responses(spec())
    assert "RequestError" in document["components"]["schemas"]
    predict = document["paths"]["/predict"]["post"]
    feedback = document["paths"]["/feedback"]["post"]
    assert set(predict["responses"]) == {"200", "400", "413", "415", "503"}
    assert set(feedback["responses"]) == {"200", "400", "401", "413", "415"}
    assert predict["requestBody"]["required"] is True
    assert document["paths"]["/livez"] == spec()["paths"]["/livez"]


def test_the_document_names_the_categories_and_classes_of_the_model_served() -> None:
    accepted = AcceptedInputs(reject_unknown_categories=True)
    accepted.follow(served(["0", "1"], {"SCHL": frozenset({"21", "01"})}))
    document = spec()
    accepted.describe(document)
    schemas = document["components"]["schemas"]
    assert schemas["Instance"]["properties"]["SCHL"] == {
        "anyOf": [
            {"type": "string", "enum": ["01", "21"]},
            {"type": "integer", "enum": [21]},  # "01" is not how 1 is written
            {"type": "null"},
        ]
    }
    assert schemas["LabelIn"]["properties"]["label"] == {
        "anyOf": [
            {"type": "string", "enum": ["0", "1"]},
            {"type": "integer", "enum": [0, 1]},
            {"type": "number", "enum": [0.0, 1.0]},
        ]
    }


def test_categories_stay_open_when_unknown_ones_are_accepted_and_swaps_are_followed() -> None:
    accepted = AcceptedInputs(reject_unknown_categories=False)
    accepted.follow(served(["a", "b"], {"SCHL": frozenset({"21"})}))
    accepted.follow(served(["a", "b", "c"], {"SCHL": frozenset({"21"})}))
    document = spec()
    accepted.describe(document)
    schemas = document["components"]["schemas"]
    assert schemas["Instance"] == spec()["components"]["schemas"]["Instance"]
    assert schemas["LabelIn"]["properties"]["label"]["anyOf"][0]["enum"] == ["a", "b", "c"]


def test_before_any_model_the_document_only_gains_the_answer_of_the_task() -> None:
    document = spec()
    AcceptedInputs(reject_unknown_categories=True).describe(document)
    answer = document["paths"]["/predict"]["post"]["responses"].pop("200")
    assert answer["content"]["application/json"]["schema"]["title"] == "ClassificationAnswer"
    expected = copy.deepcopy(spec())
    del expected["paths"]["/predict"]["post"]["responses"]["200"]
    assert document == expected
