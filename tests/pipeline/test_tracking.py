"""Where ``configure`` points MLflow: each project its own embedded store, or the user's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline import tracking
from pipeline.settings import PROJECT_ROOT, Settings, load_settings


def project(root: Path) -> Settings:
    root.mkdir()
    shutil.copy(PROJECT_ROOT / "params.yaml", root / "params.yaml")
    return load_settings(root / "params.yaml")


@pytest.fixture
def no_user_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    # setenv first so teardown removes what MLflow itself writes into the environment.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unset-by-test")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setattr(tracking, "_configured_uri", None)


@pytest.mark.usefixtures("no_user_uri")
def test_two_projects_in_one_process_get_their_own_store_and_artifact_folder(
    tmp_path: Path,
) -> None:
    for name in ("first", "second"):
        settings = project(tmp_path / name)

        experiment = tracking.configure(settings)

        import mlflow

        assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path / name / 'mlflow.db'}"
        location = (tmp_path / name / "mlartifacts" / "training").as_uri()
        assert experiment.artifact_location == location
        assert (tmp_path / name / "mlflow.db").exists()


@pytest.mark.usefixtures("no_user_uri")
def test_a_tracking_uri_set_by_the_user_wins_and_keeps_the_servers_artifact_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracking.configure(project(tmp_path / "embedded"))  # MLflow now holds that URI
    elsewhere = f"sqlite:///{tmp_path / 'shared.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)

    experiment = tracking.configure(project(tmp_path / "user"), experiment="another")

    import mlflow

    assert mlflow.get_tracking_uri() == elsewhere
    assert not (tmp_path / "user" / "mlflow.db").exists()
    assert "mlartifacts" not in experiment.artifact_location  # the store's own default
