from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mlstack.cli import app
from mlstack.scenarios import ScenarioError, inject, load
from pipeline.settings import Reassign, ScaleLabels, Scenario, load_settings, parse_settings


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


def test_scale_labels_multiplies_a_numeric_target_in_its_ranges(rows: pd.DataFrame) -> None:
    labels = pd.Series([100.0, 200.0, 300.0, 400.0])
    scenario = Scenario(rows="x", scale_labels=ScaleLabels(factor=0.5, ranges={"AGEP": (40, 59)}))
    same, scaled = inject(rows, labels, scenario, None)
    assert scaled is not None and scaled.tolist() == [100.0, 100.0, 150.0, 400.0]
    pd.testing.assert_frame_equal(same, rows)


def test_label_changes_that_do_not_fit_the_task_are_refused(rows: pd.DataFrame) -> None:
    numbers, classes = pd.Series([1.0, 2.0, 3.0, 4.0]), pd.Series(["0", "1", "0", "1"])
    with pytest.raises(ScenarioError, match="scale_labels needs a labels file and a numeric"):
        inject(rows, classes, Scenario(rows="x", scale_labels=ScaleLabels(factor=2)), ["0", "1"])
    with pytest.raises(ScenarioError, match="flip_labels needs a labels file and classes"):
        inject(rows, numbers, Scenario(rows="x", flip_labels={"AGEP": (0, 99)}), None)


def test_the_regression_example_scenarios_load_numeric_labels() -> None:
    # the example is copied over params.yaml at the project's root: its paths hang off it
    raw = yaml.safe_load(Path("examples/regression/params.yaml").read_text())
    settings = parse_settings(raw, root=Path.cwd())
    early, prices = load(settings, "production_early")
    assert prices is not None and prices.dtype == "float64" and len(early) == len(prices)
    assert early["id"].between(60000, 89999).all()
    _, lowered = load(settings, "price_drop")
    assert lowered is not None
    assert lowered.sum() == pytest.approx(0.7 * prices.sum())
