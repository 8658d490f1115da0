"""Where ``configure`` points MLflow: each project its own embedded store, or the user's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline import tracking
from pipeline.settings import PROJECT_ROOT, Settings, load_settings
from tests.conftest import Project
from tests.tampering import MARKER_PICKLE


def project(root: Path) -> Settings:
    root.mkdir()
    shutil.copy(PROJECT_ROOT / "params.yaml", root / "params.yaml")
    return load_settings(root / "params.yaml")


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
def test_a_tracking_uri_set_by_the_user_wins_and_keeps_artifacts_beside_its_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracking.configure(project(tmp_path / "embedded"))  # MLflow now holds that URI
    elsewhere = f"sqlite:///{tmp_path / 'shared.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)

    experiment = tracking.configure(project(tmp_path / "user"), experiment="another")

    import mlflow

    assert mlflow.get_tracking_uri() == elsewhere
    assert not (tmp_path / "user" / "mlflow.db").exists()
    # Beside shared.db, not in the project and not in the folder the test ran from
    # (MLflow's ./mlruns default); a tracking server keeps its own default.
    assert experiment.artifact_location == (tmp_path / "mlartifacts" / "another").as_uri()


def tampered_folder(folder: Path, marker: Path, form: str) -> Path:
    """A model folder whose MLmodel asks for ``form`` and whose pickle would touch ``marker``."""
    import subprocess
    import sys

    folder.mkdir()
    subprocess.run(
        [sys.executable, "-c", MARKER_PICKLE, str(folder / "model.pkl"), str(marker)], check=True
    )
    flavor = f"    pickled_model: model.pkl\n    serialization_format: {form}\n"
    (folder / "MLmodel").write_text(f"flavors:\n  sklearn:\n{flavor}")
    return folder


@pytest.mark.parametrize("form", ["cloudpickle", "pickle"])
def test_a_model_whose_mlmodel_asks_for_pickle_is_refused_and_its_pickle_never_runs(
    tmp_path: Path, form: str
) -> None:
    import pickle

    marker = tmp_path / "pwned"
    folder = tampered_folder(tmp_path / "model", marker, form)
    with pytest.raises(tracking.UnsafeModel, match=f"serialised as '{form}'"):
        tracking.load_model(folder)
    assert not marker.exists()
    pickle.loads((folder / "model.pkl").read_bytes())  # the payload is real: it runs here
    assert marker.exists()


def test_a_skops_model_holding_an_unreviewed_type_is_refused(tmp_path: Path) -> None:
    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    folder = tmp_path / "model"
    folder.mkdir()
    skops.io.dump(FunctionTransformer(func=print), folder / "model.skops")
    flavor = "    pickled_model: model.skops\n    serialization_format: skops\n"
    (folder / "MLmodel").write_text(f"flavors:\n  sklearn:\n{flavor}")
    with pytest.raises(tracking.UnsafeModel, match="unreviewed types: builtins.print"):
        tracking.load_model(folder)


@pytest.mark.slow
@pytest.mark.usefixtures("no_user_uri")
def test_a_champion_is_loaded_from_the_store_named_not_the_process_default(
    pipeline_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow resolves ``models:/`` against its process-wide registry whatever it is told;
    from another folder that was a fresh ``./mlflow.db`` and "model not found"."""
    monkeypatch.chdir(tmp_path)
    settings = pipeline_project.settings
    model = tracking.load_model(tracking.champion_uri(settings), pipeline_project.tracking_uri)
    assert [str(c) for c in model.classes_] == ["0", "1"]
    assert not (tmp_path / "mlflow.db").exists()
