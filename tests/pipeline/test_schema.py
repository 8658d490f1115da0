from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.labels import normalize_label, normalize_labels
from pipeline.schema import SchemaError, validate
from pipeline.settings import DataSettings, Features, Split


@pytest.fixture
def data() -> DataSettings:
    return DataSettings(
        path="unused.parquet",
        task="classification",
        target="y",
        id=None,
        timestamp=None,
        classes=["0", "1"],
        drop=[],
        features=Features(numerical=["age"], categorical=["color", "flag"]),
        ranges={"age": (0, 120)},
        split=Split(test_size=0.25, stratify=True),
        seed=0,
    )


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [30.0, 41.0, 52.0, 63.0],
            "color": pd.Categorical(["red", "blue", "red", "green"]),
            "flag": [True, False, True, True],
            "y": [1, 0, 1, 0],
        }
    )


def test_valid_frame_gets_plain_dtypes(data: DataSettings, frame: pd.DataFrame) -> None:
    out = validate(frame, data)
    assert out["age"].dtype == np.float64
    assert out["color"].dtype == object and out["color"].tolist() == ["red", "blue", "red", "green"]
    assert out["flag"].tolist() == ["True", "False", "True", "True"]
    assert out["y"].tolist() == ["1", "0", "1", "0"]


def test_integer_categories_become_strings(data: DataSettings, frame: pd.DataFrame) -> None:
    frame["color"] = [3, 1, 3, 2]
    assert validate(frame, data)["color"].tolist() == ["3", "1", "3", "2"]


def test_float_labels_are_the_same_classes(data: DataSettings, frame: pd.DataFrame) -> None:
    frame["y"] = [1.0, 0.0, 1.0, 0.0]
    assert validate(frame, data)["y"].tolist() == ["1", "0", "1", "0"]
    assert normalize_label(1.0) == normalize_label(1) == normalize_label("1") == "1"
    assert normalize_label(np.int64(0)) == "0"


def test_missing_labels_stay_missing() -> None:
    out = normalize_labels(pd.Series([1.0, None, 0.0]))
    assert out.tolist()[0] == "1" and pd.isna(out.tolist()[1]) and out.tolist()[2] == "0"


def test_empty_frame(data: DataSettings, frame: pd.DataFrame) -> None:
    with pytest.raises(SchemaError, match="empty"):
        validate(frame.iloc[0:0], data)


def test_missing_column_is_named(data: DataSettings, frame: pd.DataFrame) -> None:
    with pytest.raises(SchemaError, match="missing feature column.*color"):
        validate(frame.drop(columns=["color"]), data)


def test_missing_target_is_named(data: DataSettings, frame: pd.DataFrame) -> None:
    with pytest.raises(SchemaError, match="missing target column: y"):
        validate(frame.drop(columns=["y"]), data)


def test_wrong_dtype_is_named(data: DataSettings, frame: pd.DataFrame) -> None:
    frame["age"] = ["thirty", "forty", "fifty", "sixty"]
    with pytest.raises(SchemaError, match="'age' must be numerical"):
        validate(frame, data)


def test_all_null_column_is_named(data: DataSettings, frame: pd.DataFrame) -> None:
    frame["color"] = None
    with pytest.raises(SchemaError, match="'color' is entirely null"):
        validate(frame, data)


def test_value_out_of_range_is_named(data: DataSettings, frame: pd.DataFrame) -> None:
    frame.loc[2, "age"] = 250.0
    with pytest.raises(SchemaError, match=r"'age' has 1 value\(s\) outside \[0.0, 120.0\]"):
        validate(frame, data)


def test_unexpected_label_is_named(data: DataSettings, frame: pd.DataFrame) -> None:
    frame["y"] = [1, 0, 2, 0]
    with pytest.raises(SchemaError, match=r"'y' has values outside \['0', '1'\]: \['2'\]"):
        validate(frame, data)


def test_null_label_is_named(data: DataSettings, frame: pd.DataFrame) -> None:
    frame["y"] = [1.0, None, 1.0, 0.0]
    with pytest.raises(SchemaError, match="'y' has 1 null"):
        validate(frame, data)


def test_single_class_is_an_error(data: DataSettings, frame: pd.DataFrame) -> None:
    frame["y"] = 1
    with pytest.raises(SchemaError, match="single class"):
        validate(frame, data)
