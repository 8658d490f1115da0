"""The whole drift job on a three-class model whose classes are strings.

scikit-learn's bundled wine data (178 rows, 13 numerical features), its classes renamed
gold, silver and bronze, grown to a few thousand rows by resampling with a little noise
so windows reach ``drift.min_rows``. The project's model factory is retargeted by the
params file alone (the schema, the classes, a logistic regression), the reference set and
the importance file are written as the evaluate stage writes them, and ``mlstack drift
run --json`` judges labeled windows: a stable one raises nothing, a concept flip is
concept drift, and every verdict of the summary is there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_wine
from typer.testing import CliRunner

from mlstack.drift_command import drift_app
from pipeline.io import write_json
from pipeline.metrics import permutation_importance
from pipeline.model import build_model, predict_frame
from pipeline.paths import IMPORTANCE_FILE, REFERENCE_FILE
from pipeline.settings import PROJECT_ROOT, load_settings

pytestmark = pytest.mark.slow

NAMES = {0: "gold", 1: "silver", 2: "bronze"}
TARGET = "grade"


def wine_rows(rows: int, seed: int) -> pd.DataFrame:
    """``rows`` resampled wine rows, each feature jittered by its own spread (so the
    model is good, not perfect)."""
    wine = load_wine(as_frame=True)
    features = wine.data.rename(columns=lambda c: c.replace("/", "_"))
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, len(features), rows)
    frame = features.iloc[picked].reset_index(drop=True)
    frame = frame + rng.normal(0, 1.0, frame.shape) * features.std().to_numpy()
    frame[TARGET] = wine.target.iloc[picked].map(NAMES).to_numpy()
    frame.insert(0, "id", np.arange(rows) + seed * 100_000)
    return frame


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("multiclass")
    train, test = wine_rows(3000, 0), wine_rows(3000, 1)
    features = [c for c in train.columns if c not in ("id", TARGET)]
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["data"].update(
        path="train.parquet",
        target=TARGET,
        classes=["bronze", "gold", "silver"],
        drop=[],
        features={"numerical": features, "categorical": []},
        ranges={},
    )
    params["train"]["estimator"] = "logistic_regression"
    params["drift"].update(min_rows=500, min_labeled_rows=200, bootstrap=200)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    settings = load_settings(root / "params.yaml")

    model = build_model(settings.data.features, settings.train, settings.data.seed)
    model.fit(train[features], train[TARGET])
    scored = pd.concat([test, predict_frame(model, test[features])], axis=1)
    reference = root / REFERENCE_FILE
    reference.parent.mkdir(parents=True)
    scored.to_parquet(reference)
    importance = permutation_importance(model, test[features], test[TARGET], "roc_auc", 2, 0)
    write_json({"metric": "roc_auc", "importance": importance}, root / IMPORTANCE_FILE)

    current = wine_rows(1500, 2)
    current = pd.concat([current, predict_frame(model, current[features])], axis=1)
    current.to_parquet(root / "stable.parquet")
    # Concept flip: inputs untouched, every gold wine relabelled silver and back.
    flipped = current.copy()
    flipped[TARGET] = current[TARGET].replace({"gold": "silver", "silver": "gold"})
    flipped.to_parquet(root / "flipped.parquet")
    return root


def run(project: Path, current: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        drift_app,
        ["run", "--current", str(project / current), "--no-mlflow", "--no-workspace", "--json"],
        env={"MLSTACK_PARAMS": str(project / "params.yaml")},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def test_string_classes_get_every_verdict_on_a_stable_window(project: Path) -> None:
    summary = run(project, "stable.parquet")
    assert summary["rows"]["labeled"] == 1500
    assert summary["data_drift"]["detected"] is False
    assert summary["data_drift"]["weights"] == "importance"
    assert summary["prediction_drift"]["detected"] is False
    assert summary["label_drift"]["detected"] is False
    performance = summary["performance"]
    assert performance["metric"] == "roc_auc"
    for key in ("reference", "estimated", "realized", "lower_threshold"):
        assert 0.5 < performance[key] <= 1.0, key
    assert performance["drop_detected"] is False
    assert performance["estimated_drop_detected"] is False
    assert summary["concept_drift"]["detected"] is False
    assert summary["drift_detected"] is False
    folder = Path(summary["folder"])
    assert (folder / "performance.html").exists(), "Evidently's multiclass report ran"


def test_string_classes_concept_flip_is_concept_drift(project: Path) -> None:
    summary = run(project, "flipped.parquet")
    assert summary["data_drift"]["detected"] is False
    assert summary["performance"]["estimated_drop_detected"] is False
    assert summary["performance"]["drop_detected"] is True
    assert summary["concept_drift"]["detected"] is True
    assert summary["drift_detected"] is True
