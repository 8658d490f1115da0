"""The request models, built from the feature schema in ``params.yaml``.

Nothing here names a column: a dataset swap changes ``params.yaml`` and the input
model follows. Pydantic checks presence, type and range per row; the categories known
at training time come from the fitted model and are checked by :func:`unknown_categories`.
Errors use one shape, the one BentoML gives pydantic errors:
``{"error": str, "detail": [{"type", "loc": ["instances", row, field], "msg"}]}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictFloat,
    StrictInt,
    StrictStr,
)
from pydantic import create_model as _create_model
from pydantic_core import PydanticCustomError

from pipeline.labels import normalize_label
from pipeline.settings import DataSettings


def _category(value: Any) -> Any:
    # JSON clients send codes as "21" or 21: both mean category "21". Floats, lists and
    # objects are not categories.
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int):
        return normalize_label(value)
    raise PydanticCustomError("category_type", "Input should be a string category")


Number = Annotated[float, Strict()]
Category = Annotated[str, BeforeValidator(_category)]


def _class_label(value: Any) -> Any:
    # A class label as JSON sends it: "1", 1 or 1.0. Not a boolean (a dataset whose classes
    # are booleans takes "True"/"False" as strings), not NaN or infinity (no class at all).
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise PydanticCustomError(
        "label_type", "Input should be a class label: a string, an integer or a finite number"
    )


ClassLabel = Annotated[StrictStr | StrictInt | StrictFloat, BeforeValidator(_class_label)]


def _number_label(value: Any) -> Any:
    # A regression task's label: a JSON number, finite. Not a string (not even "1.5": the
    # sender's number formatting is no part of the contract), not a boolean.
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise PydanticCustomError(
        "label_type", "Input should be a finite number: the true value of a regression target"
    )


NumberLabel = Annotated[StrictFloat, BeforeValidator(_number_label)]
ECHO_CHARS = 40  # an error message repeats at most this much of the value it refuses


def shown(value: Any) -> str:
    """``repr(value)``, cut to :data:`ECHO_CHARS`: a refusal never echoes a huge input back."""
    text = repr(value)
    return text if len(text) <= ECHO_CHARS else f"{text[: ECHO_CHARS - 3]}... ({len(text)} chars)"


class LabelIn(BaseModel):
    """One feedback label for a prediction the service returned earlier."""

    model_config = ConfigDict(extra="forbid")

    # printable ASCII, as the service issues them: anything else is a 400 naming the row,
    # never a TypeError in the signature check (hmac.compare_digest takes ASCII text only)
    request_id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
    label: ClassLabel


class NumberLabelIn(LabelIn):
    """One feedback value for a regressor's earlier prediction."""

    label: NumberLabel


def label_model(data: DataSettings) -> type[LabelIn]:
    """The feedback label of the task: a class label, or a regression target's number."""
    return NumberLabelIn if data.is_regression else LabelIn


def instance_model(data: DataSettings) -> type[BaseModel]:
    """A pydantic model with one required field per feature, extra keys forbidden.

    A feature may be null (the model imputes it) but not absent. Field names are
    positional and the column names are aliases, so any column name works, even one
    that is not a Python identifier or that clashes with pydantic's own attributes.
    """
    fields: dict[str, Any] = {}
    for index, column in enumerate(data.features.numerical):
        low, high = data.ranges.get(column, (None, None))
        number = Annotated[Number, Field(ge=low, le=high, allow_inf_nan=False)]
        fields[f"n{index}"] = (number | None, Field(alias=column))  # noqa: UP007
    for index, column in enumerate(data.features.categorical):
        fields[f"c{index}"] = (Category | None, Field(alias=column))
    config = ConfigDict(extra="forbid", populate_by_name=False, frozen=True)
    model: type[BaseModel] = _create_model("Instance", __config__=config, **fields)
    return model


def body_model(name: str, key: str, item: Any, max_rows: int) -> type[BaseModel]:
    """The request body: ``{key: [item, ...]}`` and no other top-level key.

    An unknown top-level key is refused as an unknown key inside a row is: a 400 of type
    ``extra_forbidden`` naming the key (``loc: [key]``), never silently ignored: a client
    that misspells ``instances`` or sends ``{"instances": ..., "model": "v2"}`` learns that
    the field does nothing. (BentoML's own body model ignores extra keys.)
    """
    rows: Any = Annotated[list[item], Field(min_length=1, max_length=max_rows)]
    fields: dict[str, Any] = {key: (rows, ...)}
    model: type[BaseModel] = _create_model(name, __config__=ConfigDict(extra="forbid"), **fields)
    return model


def as_rows(instances: Sequence[BaseModel], data: DataSettings) -> list[dict[str, Any]]:
    """Validated instances as plain dicts keyed by column: floats and category strings."""
    numerical = [(f"n{i}", c) for i, c in enumerate(data.features.numerical)]
    categorical = [(f"c{i}", c) for i, c in enumerate(data.features.categorical)]
    rows = []
    for instance in instances:
        values = instance.__dict__
        row: dict[str, Any] = {}
        for field, column in numerical:
            value = values[field]
            row[column] = None if value is None else float(value)
        for field, column in categorical:
            value = values[field]
            row[column] = value
        rows.append(row)
    return rows


def known_categories(model: Any, categorical: Sequence[str]) -> dict[str, frozenset[str]]:
    """The categories the fitted model's one-hot encoder saw in training, per column.

    Found by walking the pipeline for the encoder fitted on exactly these columns, so
    it does not depend on the step names of one factory.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    def encoders(step: Any, columns: list[str] | None) -> list[tuple[Any, list[str]]]:
        if isinstance(step, Pipeline):
            return [found for _, inner in step.steps for found in encoders(inner, columns)]
        if isinstance(step, ColumnTransformer):
            return [
                found
                for _, inner, cols in step.transformers_
                if not isinstance(inner, str)
                for found in encoders(inner, list(cols))
            ]
        if isinstance(step, OneHotEncoder) and columns is not None:
            return [(step, columns)]
        return []

    known: dict[str, frozenset[str]] = {}
    for encoder, columns in encoders(model, None):
        for column, values in zip(columns, encoder.categories_, strict=True):
            known[column] = frozenset(normalize_label(v) for v in values if v == v)
    missing = [c for c in categorical if c not in known]
    if missing:
        raise ValueError(f"the model has no one-hot encoder for categorical column(s) {missing}")
    return {c: known[c] for c in categorical}


def unknown_categories(
    rows: Sequence[Mapping[str, Any]], known: Mapping[str, frozenset[str]], limit: int = 20
) -> list[dict[str, Any]]:
    """Errors, in BentoML's shape, for category values the model never saw (first ``limit``)."""
    errors: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        for column, values in known.items():
            value = row[column]
            if value is not None and value not in values:
                errors.append(
                    {
                        "type": "unknown_category",
                        "loc": ["instances", index, column],
                        "msg": f"unknown category {shown(value)} for {column!r} in row {index}",
                    }
                )
                if len(errors) >= limit:
                    return errors
    return errors


def error_body(summary: str, detail: list[dict[str, Any]]) -> dict[str, Any]:
    return {"error": summary, "detail": detail}
