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
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
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


def decoding_body(body: type[BaseModel], parser: RowParser) -> type[BaseModel]:
    """``body`` as BentoML's input spec, taking a well-formed body through ``parser``.

    BentoML makes any input model its spec by adding its ``IOMixin`` (its
    ``ensure_io_descriptor``, which names the class ``<name>IODescriptor``); this is that
    class, same name, same fields, so the OpenAPI document and every pydantic refusal stay
    as they were, with ``from_http_request`` first trying :meth:`RowParser.parse` on JSON
    bodies. The API method then gets :class:`ParsedRows` instead of pydantic instances.
    """
    from _bentoml_impl.serde import JSONSerde
    from _bentoml_sdk.io_models import IOMixin

    async def from_http_request(cls: Any, request: Any, serde: Any) -> Any:
        if isinstance(serde, JSONSerde):
            rows = parser.parse(await request.body())
            if rows is not None:
                return cls.model_construct(**{parser.key: rows})
        return await serde.parse_request(request, cls)  # pydantic decides and words it

    name = f"{body.__name__}IODescriptor"
    namespace = {
        "__module__": body.__module__,
        "__qualname__": name,
        "from_http_request": classmethod(from_http_request),
    }
    metaclass: Any = type(body)  # pydantic's model metaclass, as a class statement uses
    spec: type[BaseModel] = metaclass(name, (IOMixin, body), namespace)
    return spec


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


class ParsedRows(list[dict[str, Any]]):
    """Rows decoded by :class:`RowParser`: already what :func:`as_rows` gives (plain dicts
    in the schema's column order, numbers as floats, categories as strings, None for a
    missing value), so the service takes them as they are."""


_NUMBER_TYPES = frozenset({float, type(None)})
_NUMBER_OR_INT_TYPES = frozenset({float, int, type(None)})
_CATEGORY_TYPES = frozenset({str, type(None)})


@dataclass(frozen=True)
class RowParser:
    """``{"instances": [...]}`` decoded straight into rows, for bodies the request model
    would accept as they are, without building a pydantic object per row.

    :meth:`parse` takes the common, well-formed body and checks what the request model
    checks, column by column: one top-level key, 1 to ``max_rows`` rows, each an object
    with exactly the schema's features, numbers (JSON integers or floats, not booleans)
    finite and within ``data.ranges``, categories strings, None anywhere. For anything
    else (malformed JSON, a wrong type, a missing or extra key, a number out of range, a
    category sent as a JSON number, which the model normalises) it answers None and the
    pydantic model decides, so every refusal keeps its exact wording. A body it parses is
    one the pydantic model accepts, with the same values (tests/serving/test_inputs.py).
    """

    numbers: tuple[tuple[str, float | None, float | None], ...]
    categories: tuple[str, ...]
    order: tuple[str, ...]  # as_rows's: the numerical columns, then the categorical
    max_rows: int
    key: str = "instances"

    @classmethod
    def of(cls, data: DataSettings, max_rows: int) -> RowParser:
        numerical, categorical = data.features.numerical, data.features.categorical
        numbers = tuple((c, *data.ranges.get(c, (None, None))) for c in numerical)
        return cls(numbers, tuple(categorical), (*numerical, *categorical), max_rows)

    def parse(self, body: bytes) -> ParsedRows | None:
        """The body's rows, or None: not a body this path takes as it is."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if type(data) is not dict or len(data) != 1:
            return None
        rows = data.get(self.key)
        if type(rows) is not list or not 1 <= len(rows) <= self.max_rows:
            return None
        if set(map(type, rows)) != {dict} or set(map(len, rows)) != {len(self.order)}:
            return None
        try:  # a row without one of the features: a KeyError, and pydantic words it
            if not all(self._number(rows, *number) for number in self.numbers):
                return None
            for column in self.categories:
                if not {type(row[column]) for row in rows} <= _CATEGORY_TYPES:
                    return None
        except KeyError:
            return None
        if tuple(rows[0]) != self.order:  # the capture log takes the first row's order
            rows = [{column: row[column] for column in self.order} for row in rows]
        return ParsedRows(rows)

    @staticmethod
    def _number(rows: list[dict[str, Any]], column: str, low: Any, high: Any) -> bool:
        """Whether ``column`` holds only None and finite numbers within [low, high]; JSON
        integers become floats in place, as the request model's strict float makes them."""
        values = [row[column] for row in rows]
        kinds = set(map(type, values))
        if not kinds <= _NUMBER_TYPES:
            if not kinds <= _NUMBER_OR_INT_TYPES:
                return False
            for row in rows:
                if type(row[column]) is int:
                    row[column] = float(row[column])
            values = [row[column] for row in rows]
        present = [v for v in values if v is not None] if type(None) in kinds else values
        if not present:
            return True
        smallest, largest = min(present), max(present)
        if not (math.isfinite(smallest) and math.isfinite(largest)):
            return False
        return (low is None or smallest >= low) and (high is None or largest <= high)


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
