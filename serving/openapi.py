"""The OpenAPI document at ``/docs.json``, made to say what the service really does.

BentoML writes the document from the API signatures. Two things it cannot know are added
here, on the document's way out (serving/guard.py calls both):

- the error answers: every 4xx carries a summary and one entry per problem naming the row
  and field (BentoML calls ``detail`` a string and leaves out 401, 413 and 503);
- the categories and classes the served model takes, as enums: a value outside them is a
  400, so the document must not call it valid. They follow the champion when it swaps;
- the answer of ``/predict`` for the task (``data.task``): per row a label and the class
  probabilities, or a regressor's number and its interval (:func:`predict_answer`); a
  regression task's feedback label is a JSON number (the pydantic model says so already).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving.champion import ServedModel

ERROR_SCHEMA = {
    "title": "RequestError",
    "type": "object",
    "description": "A refused request: a summary and one entry per problem, naming row and field.",
    "properties": {
        "error": {"type": "string"},
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "loc": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    },
                    "msg": {"type": "string"},
                },
                "required": ["type", "loc", "msg"],
            },
        },
    },
    "required": ["error", "detail"],
}
ERRORS = {
    "400": "Invalid input: malformed JSON, a missing or extra field, a wrong type, an unseen "
    "category or class, too many rows; `loc` names the row and the field.",
    "413": "The body is larger than serving.max_body_bytes.",
    "415": "The body is not sent as application/json.",
}
# The guarded routes and the answers each gives beyond ERRORS.
ROUTE_ERRORS = {
    "/predict": {"503": "Overloaded: the request waited serving.batching.max_latency_ms."},
    "/feedback": {"401": "MLSTACK_FEEDBACK_TOKEN is set and the bearer token is missing or wrong."},
}


def with_error_responses(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with the 4xx/503 answers of ``/predict`` and ``/feedback`` declared as they
    are: BentoML's own document calls ``detail`` a string and leaves out 401, 413 and 503."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["RequestError"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/RequestError"}
    for route, route_errors in ROUTE_ERRORS.items():
        operation = spec.get("paths", {}).get(route, {}).get("post")
        if operation is None:
            continue
        if "requestBody" in operation:
            operation["requestBody"]["required"] = True  # an empty body is a 400
        responses = operation.setdefault("responses", {})
        for status, description in {**ERRORS, **route_errors}.items():
            responses[status] = {
                "description": description,
                "content": {"application/json": {"schema": reference}},
            }
    return spec


MODEL_SCHEMA = {
    "type": "object",
    "description": "The registered model version that scored every row of this answer.",
    "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
    "required": ["name", "version"],
}
NUMBER = {"type": "number"}


def predict_answer(regression: bool) -> dict[str, Any]:
    """The schema of a 200 from ``/predict``: one entry per instance, in order."""
    if regression:
        row = {
            "type": "object",
            "properties": {
                "request_id": {"type": "string"},
                "prediction": NUMBER,
                "interval": {
                    "type": "object",
                    "description": "Split-conformal bounds holding the true value with the "
                    "model's nominal coverage (evaluate.interval_coverage).",
                    "properties": {"lower": NUMBER, "upper": NUMBER},
                    "required": ["lower", "upper"],
                },
            },
            "required": ["request_id", "prediction", "interval"],
        }
    else:
        row = {
            "type": "object",
            "properties": {
                "request_id": {"type": "string"},
                "label": {"type": "string"},
                "probabilities": {"type": "object", "additionalProperties": NUMBER},
            },
            "required": ["request_id", "label", "probabilities"],
        }
    return {
        "title": "RegressionAnswer" if regression else "ClassificationAnswer",
        "type": "object",
        "properties": {"model": MODEL_SCHEMA, "predictions": {"type": "array", "items": row}},
        "required": ["model", "predictions"],
    }


def _spellings(values: Sequence[str]) -> list[dict[str, Any]]:
    """JSON spellings of string codes: "21" or 21 (and 1.0 for a class), as schema enums."""
    whole = sorted({int(v) for v in values if v.lstrip("-").isdigit() and str(int(v)) == v})
    return [{"type": "string", "enum": sorted(values)}, {"type": "integer", "enum": whole}]


class AcceptedInputs:
    """What this worker's model accepts, kept for the document: the classes a feedback label
    may take and, when unknown categories are refused, the categories per column."""

    def __init__(self, reject_unknown_categories: bool, regression: bool = False) -> None:
        self.reject_unknown_categories = reject_unknown_categories
        self.regression = regression
        self.classes: list[str] = []
        self.categories: dict[str, frozenset[str]] = {}

    def follow(self, served: ServedModel) -> None:
        """The document follows the model served (the champion follower's swap hook)."""
        self.classes = list(served.classes)
        if self.reject_unknown_categories:
            self.categories = served.known

    def describe(self, spec: dict[str, Any]) -> None:
        """Name the categories and classes the model takes in ``spec``, as enums, and the
        answer ``/predict`` gives for the task."""
        answer = spec.get("paths", {}).get("/predict", {}).get("post", {}).get("responses", {})
        if "200" in answer:
            content = answer["200"].setdefault("content", {}).setdefault("application/json", {})
            content["schema"] = predict_answer(self.regression)
        schemas = spec.get("components", {}).get("schemas", {})
        instance = schemas.get("Instance", {}).get("properties", {})
        for column, values in self.categories.items():
            if column in instance:
                instance[column] = {"anyOf": [*_spellings(sorted(values)), {"type": "null"}]}
        label = schemas.get("LabelIn", {}).get("properties", {})
        classes = self.classes
        if "label" in label and classes:
            numbers = sorted(
                {float(c) for c in classes if c.lstrip("-").isdigit() and str(int(c)) == c}
            )
            label["label"] = {"anyOf": [*_spellings(classes), {"type": "number", "enum": numbers}]}
