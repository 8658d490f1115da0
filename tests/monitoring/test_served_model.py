"""The one rule that decides which model served a window (``monitoring.served_model``)."""

from __future__ import annotations

import pandas as pd

from monitoring.drift_summary import ModelInfo
from monitoring.served_model import served_model


def rows(versions: list[str | None], names: list[str] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({"model_version": versions})
    if names is not None:
        frame["model_name"] = names
    return frame


def test_the_version_that_served_most_rows_is_the_windows() -> None:
    assert served_model(rows(["3", "4", "4"], ["m"] * 3), "default") == ModelInfo(
        name="m", version="4"
    )
    assert served_model(rows(["3", "3", "4"]), "default") == ModelInfo(name="default", version="3")


def test_a_tie_goes_to_the_latest_version_by_number_not_text() -> None:
    assert served_model(rows(["9", "10"]), "m") == ModelInfo(name="m", version="10")
    assert served_model(rows(["10", "9", "2", "2", "10", "9"]), "m") == ModelInfo(
        name="m", version="10"
    )


def test_the_name_is_the_one_that_versions_rows_give() -> None:
    found = served_model(rows(["1", "2", "2"], ["old", "new", None]), "default")
    assert found == ModelInfo(name="new", version="2")


def test_rows_that_name_no_version_say_nothing() -> None:
    assert served_model(pd.DataFrame({"x": [1]}), "m") is None
    assert served_model(rows([None, None]), "m") is None
    assert served_model(rows([]), "m") is None
