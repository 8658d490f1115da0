from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlstack.cli import app
from mlstack.scenarios import ScenarioError, inject, load
from pipeline.settings import Reassign, Scenario, load_settings


@pytest.fixture
def rows() -> pd.DataFrame:
    return pd.DataFrame({"AGEP": [20.0, 45.0, 50.0, 70.0], "MAR": ["1", "1", "2", "1"]})


def test_add_shifts_numbers_and_reassign_moves_a_share(rows: pd.DataFrame) -> None:
    scenario = Scenario(
        rows="x", add={"AGEP": 10}, reassign={"MAR": Reassign(value="5", share=1.0)}
    )
    shifted, labels = inject(rows, None, scenario, [])
    assert shifted["AGEP"].tolist() == [30.0, 55.0, 60.0, 80.0]
    assert set(shifted["MAR"]) == {"5"}
    assert labels is None
    assert rows["AGEP"].tolist()[0] == 20.0, "the input frame is left alone"


def test_flip_labels_only_in_the_subgroup(rows: pd.DataFrame) -> None:
    labels = pd.Series(["1", "1", "0", "0"])
    scenario = Scenario(rows="x", flip_labels={"AGEP": (40, 59)})
    same, flipped = inject(rows, labels, scenario, ["0", "1"])
    assert flipped is not None and flipped.tolist() == ["1", "0", "1", "0"]
    pd.testing.assert_frame_equal(same, rows)


def test_flip_without_labels_is_an_error(rows: pd.DataFrame) -> None:
    with pytest.raises(ScenarioError, match="needs a labels file"):
        inject(rows, None, Scenario(rows="x", flip_labels={"AGEP": (0, 1)}), ["0", "1"])


def test_unknown_column_is_named(rows: pd.DataFrame) -> None:
    with pytest.raises(ScenarioError, match="'AGE'"):
        inject(rows, None, Scenario(rows="x", add={"AGE": 1}), [])


def test_shipped_scenarios_load_with_labels() -> None:
    settings = load_settings()
    assert {"production_2016", "covariate_shift", "concept_flip"} <= set(settings.scenarios)
    frame, labels = load(settings, "production_2016")
    assert len(frame) == settings.scenarios["production_2016"].sample == len(labels)
    assert set(settings.data.features.all) <= set(frame.columns)
    assert "prediction" not in frame.columns, "the packager's columns are dropped"
    assert set(labels) <= {"0", "1"}


def test_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'.*covariate_shift"):
        load(load_settings(), "nope")


def test_replay_refuses_an_unknown_scenario_before_sending() -> None:
    result = CliRunner().invoke(
        app, ["replay", "--scenario", "nope", "--url", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 2
    assert "unknown scenario" in result.output


def test_replay_needs_a_file_or_a_scenario() -> None:
    result = CliRunner().invoke(app, ["replay"])
    assert result.exit_code == 2
    assert "FILE or --scenario" in result.output
