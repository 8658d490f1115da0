"""RowParser, /predict's fast decoding: it takes only bodies the pydantic request model
accepts, with the same rows, and leaves every other body to pydantic (and its wording)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from pipeline.settings import Settings, load_settings
from serving.inputs import ParsedRows, RowParser, as_rows, body_model, instance_model
from serving.service import EXAMPLE_INPUT

ROW: dict[str, Any] = EXAMPLE_INPUT["instances"][0]
MAX_ROWS = 5


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="module")
def parser(settings: Settings) -> RowParser:
    return RowParser.of(settings.data, MAX_ROWS)


@pytest.fixture(scope="module")
def body(settings: Settings) -> type[BaseModel]:
    return body_model("PredictRequest", "instances", instance_model(settings.data), MAX_ROWS)


def pydantic_rows(body: type[BaseModel], settings: Settings, raw: bytes) -> list[dict[str, Any]]:
    return as_rows(body.model_validate_json(raw).instances, settings.data)  # type: ignore[attr-defined]


def test_a_well_formed_body_gives_the_rows_pydantic_gives(
    parser: RowParser, body: type[BaseModel], settings: Settings
) -> None:
    rows = [ROW, {**ROW, "AGEP": 30, "MAR": None, "SCHL": "16"}, {**ROW, "AGEP": None}]
    raw = json.dumps({"instances": rows}).encode()
    parsed = parser.parse(raw)
    assert isinstance(parsed, ParsedRows)
    assert parsed == pydantic_rows(body, settings, raw)
    assert type(parsed[1]["AGEP"]) is float  # a JSON integer becomes a float, as in pydantic
    assert all(list(row) == list(parser.order) for row in parsed)


def test_rows_come_in_the_schema_order_whatever_the_clients(
    parser: RowParser, body: type[BaseModel], settings: Settings
) -> None:
    shuffled = dict(reversed(list(ROW.items())))
    raw = json.dumps({"instances": [shuffled, shuffled]}).encode()
    parsed = parser.parse(raw)
    assert parsed is not None and parsed == pydantic_rows(body, settings, raw)
    assert [list(row) for row in parsed] == [list(parser.order)] * 2


REFUSED = [
    b"{not json",
    b"[]",
    b'{"instances": []}',
    b'{"instances": {}}',
    json.dumps({"instances": [ROW] * (MAX_ROWS + 1)}).encode(),
    json.dumps({"instances": [ROW], "model": "v2"}).encode(),
    json.dumps({"rows": [ROW]}).encode(),
    json.dumps({"instances": [ROW, [1, 2]]}).encode(),
    json.dumps({"instances": [{**ROW, "colour": "red"}]}).encode(),
    json.dumps({"instances": [{k: v for k, v in ROW.items() if k != "MAR"}]}).encode(),
    json.dumps(
        {"instances": [{**{k: v for k, v in ROW.items() if k != "MAR"}, "colour": "red"}]}
    ).encode(),
    json.dumps({"instances": [{**ROW, "AGEP": "46"}]}).encode(),
    json.dumps({"instances": [{**ROW, "AGEP": True}]}).encode(),
    json.dumps({"instances": [ROW, {**ROW, "AGEP": 500.0}]}).encode(),
    json.dumps({"instances": [{**ROW, "AGEP": -0.5}]}).encode(),
    b'{"instances": [{"AGEP": 1e400}]}',
    json.dumps({"instances": [{**ROW, "SCHL": 2.5}]}).encode(),
    json.dumps({"instances": [{**ROW, "SCHL": ["21"]}]}).encode(),
    json.dumps({"instances": [{**ROW, "SCHL": {"code": "21"}}]}).encode(),
]


@pytest.mark.parametrize("raw", REFUSED, ids=range(len(REFUSED)))
def test_a_body_pydantic_refuses_is_left_to_pydantic(
    parser: RowParser, body: type[BaseModel], raw: bytes
) -> None:
    assert parser.parse(raw) is None
    with pytest.raises(ValidationError):
        body.model_validate_json(raw)


def test_a_code_sent_as_a_number_is_left_to_pydantic_which_takes_it(
    parser: RowParser, body: type[BaseModel], settings: Settings
) -> None:
    raw = json.dumps({"instances": [{**ROW, "SCHL": 21}]}).encode()
    assert parser.parse(raw) is None
    assert pydantic_rows(body, settings, raw)[0]["SCHL"] == "21"


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-1, max_value=130),
    st.text(max_size=3),
    st.sampled_from(["21", "1", "2", ""]),
    st.lists(st.integers(), max_size=1),
)


@hypothesis_settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    changes=st.lists(
        st.dictionaries(st.sampled_from([*ROW, "extra"]), VALUES, max_size=3), max_size=4
    ),
    dropped=st.sets(st.sampled_from(list(ROW)), max_size=1),
)
def test_whatever_the_parser_takes_pydantic_takes_the_same(
    parser: RowParser,
    body: type[BaseModel],
    settings: Settings,
    changes: list[dict[str, Any]],
    dropped: set[str],
) -> None:
    rows = [{k: v for k, v in {**ROW, **change}.items() if k not in dropped} for change in changes]
    raw = json.dumps({"instances": rows}).encode()
    parsed = parser.parse(raw)
    try:
        expected = pydantic_rows(body, settings, raw)
    except ValidationError:
        assert parsed is None
        return
    assert parsed is None or parsed == expected


def request(raw: bytes, content_type: str = "application/json") -> Any:
    """A real Starlette request carrying ``raw``, as BentoML hands one to the input spec."""
    from starlette.requests import Request

    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    headers = [(b"content-type", content_type.encode())]
    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": headers}
    return Request(scope, receive)


def test_the_service_spec_decodes_a_well_formed_body_and_leaves_the_rest_to_pydantic() -> None:
    import anyio
    from _bentoml_impl.serde import JSONSerde

    from serving.service import PREDICT_BODY

    spec: Any = PREDICT_BODY
    good = json.dumps({"instances": [ROW, ROW]}).encode()
    parsed = anyio.run(spec.from_http_request, request(good), JSONSerde())
    assert isinstance(parsed.instances, ParsedRows) and len(parsed.instances) == 2

    bad = json.dumps({"instances": [{**ROW, "AGEP": "46"}]}).encode()
    with pytest.raises(ValidationError) as caught:
        anyio.run(spec.from_http_request, request(bad), JSONSerde())
    assert caught.value.title == "PredictRequestIODescriptor"  # the name BentoML gives
    (error,) = caught.value.errors(include_url=False, include_input=False)
    assert (error["type"], error["loc"]) == ("float_type", ("instances", 0, "AGEP"))
    assert spec.__name__ == "PredictRequestIODescriptor"
