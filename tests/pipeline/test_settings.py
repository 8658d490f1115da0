from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.settings import (
    SettingsError,
    load_settings,
    load_settings_or_exit,
    params_file,
    parse_settings,
)

ROOT = Path(__file__).resolve().parents[2]


def params() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "params.yaml").read_text())
    return loaded


def test_shipped_params_load() -> None:
    settings = load_settings(ROOT / "params.yaml")
    assert settings.data.target == "employed"
    assert settings.data.classes == ["0", "1"]
    assert "AGEP" in settings.data.features.numerical
    assert settings.train.hyperparameters()["max_iter"] > 0


def test_unknown_key_is_named() -> None:
    raw = params()
    raw["train"]["hist_gradient_boosting"]["learning_rte"] = 0.1
    with pytest.raises(
        SettingsError, match=r"train\.hist_gradient_boosting\.learning_rte: unknown key"
    ):
        parse_settings(raw)


def test_unknown_section_is_named() -> None:
    with pytest.raises(SettingsError, match=r"modle: unknown key"):
        parse_settings({**params(), "modle": {"name": "x"}})


def test_wrong_type_is_named() -> None:
    raw = params()
    raw["train"]["hist_gradient_boosting"]["max_iter"] = "many"
    with pytest.raises(SettingsError, match=r"train\.hist_gradient_boosting\.max_iter: .*'many'"):
        parse_settings(raw)


@pytest.mark.parametrize(
    ("key", "value"),
    [("window", "a week"), ("window", "7"), ("holdout", 1.0), ("reference_rows", -1)],
)
def test_bad_retrain_values_are_named(key: str, value: Any) -> None:
    raw = params()
    raw["retrain"][key] = value
    with pytest.raises(SettingsError, match=rf"retrain\.{key}: .*{re.escape(repr(value))}"):
        parse_settings(raw)


@pytest.mark.parametrize("value", [0, -5, "all"])
def test_bad_importance_rows_are_named(value: Any) -> None:
    raw = params()
    raw["evaluate"]["importance_rows"] = value
    with pytest.raises(
        SettingsError, match=rf"evaluate\.importance_rows: .*{re.escape(repr(value))}"
    ):
        parse_settings(raw)


def test_missing_key_is_named() -> None:
    raw = params()
    del raw["data"]["target"]
    with pytest.raises(SettingsError, match=r"data\.target: missing key"):
        parse_settings(raw)


def test_unknown_estimator_is_named() -> None:
    raw = params()
    raw["train"]["estimator"] = "xgboost"
    with pytest.raises(SettingsError, match=r"train\.estimator"):
        parse_settings(raw)


def test_feature_listed_twice_is_an_error() -> None:
    raw = params()
    raw["data"]["features"]["categorical"].append("AGEP")
    with pytest.raises(SettingsError, match="both numerical and categorical.*AGEP"):
        parse_settings(raw)


def test_classes_are_normalised_labels() -> None:
    raw = params()
    raw["data"]["classes"] = [0.0, 1.0]
    assert parse_settings(raw).data.classes == ["0", "1"]


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(bad)
    bad.write_text("- a list\n")
    with pytest.raises(SettingsError, match="mapping of sections"):
        load_settings(bad)


def test_relative_paths_hang_off_the_params_folder(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    settings = load_settings(tmp_path / "params.yaml")
    assert settings.path(settings.data.path) == tmp_path / settings.data.path


# Mappings whose keys are names the user picks (columns, scenarios), not knobs.
OPEN_MAPPINGS = ("data.ranges", "drift.columns", "scenarios")


def leaf_keys(mapping: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        if path.startswith(OPEN_MAPPINGS):
            continue
        if isinstance(value, dict) and value:
            keys.extend(leaf_keys(value, f"{path}."))
        else:
            keys.append(path)
    return keys


@pytest.mark.parametrize("key", leaf_keys(params()))
def test_every_knob_must_be_in_params_yaml(key: str) -> None:
    """No default in code: deleting any key is an error naming it, never a silent change."""
    raw = params()
    *parents, leaf = key.split(".")
    section = raw
    for part in parents:
        section = section[part]
    del section[leaf]
    with pytest.raises(SettingsError, match=rf"{re.escape(key)}: missing key"):
        parse_settings(raw)


def test_params_file_comes_from_mlstack_params(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = params()
    raw["model"]["name"] = "elsewhere"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("MLSTACK_PARAMS", str(tmp_path / "params.yaml"))
    assert params_file() == tmp_path / "params.yaml"
    settings = load_settings()
    assert settings.model.name == "elsewhere"
    assert settings.root == tmp_path, "relative paths hang off the chosen file's folder"
    monkeypatch.delenv("MLSTACK_PARAMS")
    assert load_settings().model.name == params()["model"]["name"]


def test_capture_path_and_workers_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLSTACK_CAPTURE_PATH", "s3://bucket/capture")
    monkeypatch.setenv("MLSTACK_WORKERS", "5")
    settings = load_settings(ROOT / "params.yaml")
    assert settings.capture.path == "s3://bucket/capture"
    assert settings.serving.workers == 5
    monkeypatch.setenv("MLSTACK_WORKERS", "many")
    with pytest.raises(SettingsError, match=r"serving\.workers: .*'many'"):
        load_settings(ROOT / "params.yaml")


def test_bad_settings_end_a_command_with_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "params.yaml").write_text("data: [unclosed\n  more: {")
    monkeypatch.setenv("MLSTACK_PARAMS", str(tmp_path / "params.yaml"))
    with pytest.raises(SystemExit) as exited:
        load_settings_or_exit()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not valid YAML" in err


def _regression(raw: dict[str, Any]) -> None:
    raw["data"].update(task="regression", classes=None)
    raw["data"]["split"]["stratify"] = False
    raw["promote"].update(metric="rmse", threshold=None)
    raw["drift"]["performance_metric"] = "rmse"


def test_a_regression_task_loads_with_its_own_metrics() -> None:
    raw = params()
    _regression(raw)
    raw["train"]["estimator"] = "ridge"
    settings = parse_settings(raw)
    assert settings.data.is_regression
    assert not settings.promote.higher_is_better
    assert settings.promote.threshold is None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            lambda r: r["data"].update(task="regression"),
            r"^invalid .*: data\.classes: a regression",
        ),
        (lambda r: r["data"].update(classes=None), r"data\.classes: a classification task"),
        (lambda r: r["data"].update(task="forecast"), r"data\.task"),
        (lambda r: r["train"].update(estimator="ridge"), r"train\.estimator: 'ridge' has no"),
        (lambda r: r["promote"].update(metric="rmse"), r"promote\.metric: 'rmse' does not"),
        (lambda r: r["drift"].update(performance_metric="mae"), r"drift\.performance_metric"),
        (lambda r: r["promote"].update(min_score=0.8), r"promote\.min_score was renamed"),
    ],
)
def test_a_key_that_does_not_fit_the_task_is_named(change: Any, named: str) -> None:
    raw = params()
    change(raw)
    with pytest.raises(SettingsError, match=named):
        parse_settings(raw)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda r: r["data"]["split"].update(stratify=True), r"data\.split\.stratify"),
        (lambda r: r["train"].update(estimator="logistic_regression"), r"train\.estimator"),
        (lambda r: r["promote"].update(metric="roc_auc"), r"promote\.metric: 'roc_auc'"),
    ],
)
def test_a_regression_key_that_does_not_fit_is_named(change: Any, named: str) -> None:
    raw = params()
    _regression(raw)
    change(raw)
    with pytest.raises(SettingsError, match=named):
        parse_settings(raw)
