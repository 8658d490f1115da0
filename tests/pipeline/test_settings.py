from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.settings import SettingsError, load_settings, parse_settings

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
