"""The real pipeline, ``dvc repro`` and all, on small data in temporary projects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.datasets import load_wine

from pipeline.schema import proba_columns
from tests.conftest import Project, copy_project, employment_sample, make_project

pytestmark = pytest.mark.slow


def report(project: Project, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((project.root / "reports" / name).read_text())
    return loaded


def test_repro_trains_evaluates_and_promotes(pipeline_project: Project) -> None:
    metrics = report(pipeline_project, "metrics.json")
    assert metrics["roc_auc"] > 0.85
    assert set(metrics["per_class"]) == {"0", "1"}
    promotion = report(pipeline_project, "promotion.json")
    assert promotion["decision"] == "promoted"
    assert promotion["candidate_version"] == "1"
    for plot in ("roc", "precision_recall", "confusion"):
        assert (pipeline_project.root / "reports" / "plots" / f"{plot}.png").stat().st_size > 0
    reference = pd.read_parquet(pipeline_project.root / "data" / "reference" / "reference.parquet")
    settings = pipeline_project.settings
    expected = {settings.data.target, "prediction", *proba_columns(["0", "1"])}
    assert expected <= set(reference.columns)
    assert set(settings.data.features.all) <= set(reference.columns)
    assert reference["AGEP"].dtype == "float64"
    assert pd.api.types.is_string_dtype(reference["SCHL"])
    scored_by = reference[["model_name", "model_version"]].drop_duplicates().values.tolist()
    assert scored_by == [[settings.model.name, "1"]], "the version that scored it, for drift"
    importance = json.loads(
        (pipeline_project.root / "data" / "reference" / "importance.json").read_text()
    )
    assert importance["metric"] == settings.promote.metric
    assert set(importance["importance"]) == set(settings.data.features.all)
    assert max(importance["importance"], key=importance["importance"].get) == "AGEP"


def test_champion_loads_in_a_fresh_process(pipeline_project: Project) -> None:
    script = (
        "import mlflow.sklearn, pandas as pd\n"
        "model = mlflow.sklearn.load_model('models:/employment-classifier@champion')\n"
        "rows = pd.read_parquet('data/prepared/test.parquet').head(5)\n"
        "print(model.predict_proba(rows).shape)\n"
    )
    out = pipeline_project.run("python", "-c", script)
    assert out.stdout.strip().endswith("(5, 2)")


def test_champion_alias_and_tags_in_registry(pipeline_project: Project) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(
        tracking_uri=pipeline_project.tracking_uri, registry_uri=pipeline_project.tracking_uri
    )
    champion = client.get_model_version_by_alias("employment-classifier", "champion")
    assert str(champion.version) == "1"
    assert champion.tags["promotion.decision"] == "promoted"
    assert champion.tags["champion.reason"] == "promoted: first model: no champion yet"
    assert champion.tags["champion.previous"] == ""
    run = client.get_run(champion.run_id)
    assert run.data.tags["git_revision"] != "unknown"
    assert "dvc_lock_sha256" in run.data.tags
    assert run.data.metrics["test_roc_auc"] > 0.85
    assert run.inputs.dataset_inputs, "the training data is logged as a dataset input"


@pytest.fixture(scope="module")
def changing_project(tmp_path_factory: pytest.TempPathFactory, trained_project: Path) -> Project:
    # A copy of the session's trained project: the changes below are made to it alone.
    project = copy_project(trained_project, tmp_path_factory.mktemp("changing") / "project")
    project.run("git", "add", "-A")
    project.run("git", "commit", "-qm", "first run")
    return project


def test_second_repro_is_a_no_op(changing_project: Project) -> None:
    out = changing_project.dvc("repro", "promote")
    assert "Running stage" not in out.stdout
    assert "up to date" in out.stdout


def test_hyperparameter_change_reruns_train_not_prepare(changing_project: Project) -> None:
    def change(params: dict[str, Any]) -> None:
        params["train"]["hist_gradient_boosting"]["learning_rate"] = 0.05

    changing_project.edit_params(change)
    out = changing_project.dvc("repro", "promote")
    assert "Running stage 'train'" in out.stdout
    assert "Running stage 'evaluate'" in out.stdout
    assert "Running stage 'prepare'" not in out.stdout
    diff = json.loads(changing_project.dvc("metrics", "diff", "--json").stdout)
    assert "roc_auc" in diff["reports/metrics.json"]
    changing_project.run("git", "add", "-A")
    changing_project.run("git", "commit", "-qm", "lower learning rate")


def test_experiment_below_the_threshold_is_rejected(changing_project: Project) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(
        tracking_uri=changing_project.tracking_uri, registry_uri=changing_project.tracking_uri
    )
    before = client.get_model_version_by_alias("employment-classifier", "champion").version
    changing_project.dvc("exp", "run", "-S", "promote.threshold=0.99")
    promotion = report(changing_project, "promotion.json")
    assert promotion["decision"] == "rejected"
    assert "below threshold 0.99" in promotion["reason"]
    after = client.get_model_version_by_alias("employment-classifier", "champion").version
    assert after == before


def test_second_dataset_is_a_params_change(tmp_path: Path) -> None:
    """Multiclass wine data from scikit-learn, as CSV, numerical features only."""
    wine = load_wine(as_frame=True)
    frame = wine.frame.rename(columns={"target": "cultivar"})
    frame.columns = [c.replace("/", "_") for c in frame.columns]
    features = [c for c in frame.columns if c != "cultivar"]
    project = make_project(tmp_path, employment_sample(100))
    frame.to_csv(project.root / "data" / "raw" / "wine.csv", index=False)

    def change(params: dict[str, Any]) -> None:
        params["data"] = {
            "path": "data/raw/wine.csv",
            "task": "classification",
            "target": "cultivar",
            "id": None,
            "timestamp": None,
            "classes": [0, 1, 2],
            "drop": [],
            "features": {"numerical": features, "categorical": []},
            "ranges": {},
            "split": {"test_size": 0.3, "stratify": True},
            "seed": 7,
        }
        params["model"]["name"] = "wine-classifier"
        params["train"]["estimator"] = "logistic_regression"
        params["promote"]["threshold"] = 0.9

    project.edit_params(change)
    project.dvc("repro", "promote")
    metrics = report(project, "metrics.json")
    assert set(metrics["per_class"]) == {"0", "1", "2"}
    assert metrics["roc_auc"] > 0.9
    assert report(project, "promotion.json")["decision"] == "promoted"
    reference = pd.read_parquet(project.root / "data" / "reference" / "reference.parquet")
    assert set(proba_columns(["0", "1", "2"])) <= set(reference.columns)
    importance = json.loads((project.root / "data" / "reference" / "importance.json").read_text())
    assert set(importance["importance"]) == set(features)
