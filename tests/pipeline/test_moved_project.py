"""A copied or moved project uses its own store and artifacts, never the original's.

The probe's case: ``mlflow.db`` records absolute paths, so a copy of a trained project
read the first folder's models and logged its runs into the first folder's
``mlartifacts``. The copy here is of the session's trained project, used with its embedded
store (no ``MLFLOW_TRACKING_URI``), as a user's clone would be.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from pipeline.settings import load_settings
from pipeline.tracking import (
    client,
    configure,
    find_champion,
    load_model,
    relocate_store,
    tracking_uri,
)
from tests.conftest import Project

pytestmark = pytest.mark.slow  # the session's pipeline run


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}


def test_a_copied_project_reads_and_writes_only_its_own_artifacts(
    pipeline_project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import mlflow

    original = pipeline_project.root
    before = files_under(original / "mlartifacts")
    assert before, "the trained project keeps its artifacts beside its store"
    copy = tmp_path / "copied-project"
    shutil.copytree(original, copy, symlinks=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = load_settings(copy / "params.yaml")

    with caplog.at_level(logging.WARNING, logger="pipeline.tracking"):
        registry = client(settings)
    assert any("moved or was copied" in r.getMessage() for r in caplog.records)
    champion = find_champion(registry, settings)
    where = registry.get_model_version_download_uri(settings.model.name, champion.version)
    assert str(copy) in where and str(original) + "/" not in where
    model = load_model(f"models:/{champion.name}/{champion.version}", tracking_uri(settings))
    assert hasattr(model, "predict_proba")

    configure(settings)
    with mlflow.start_run(run_name="written-in-the-copy") as run:
        mlflow.log_text("only in the copy", "probe.txt")
    assert str(copy) in run.info.artifact_uri
    assert files_under(original / "mlartifacts") == before, "nothing written into the original"
    assert any(p.name == "probe.txt" for p in (copy / "mlartifacts").rglob("*"))
    assert relocate_store(settings) == 0, "once relocated, nothing more to change"


def test_a_store_that_is_not_mlflows_is_left_alone(
    tmp_path: Path, pipeline_project: Project
) -> None:
    settings = pipeline_project.settings.model_copy(update={"root": tmp_path})
    (tmp_path / "mlflow.db").write_bytes(b"")
    assert relocate_store(settings) == 0
    (tmp_path / "mlflow.db").write_bytes(b"not a database at all" * 10)
    assert relocate_store(settings) == 0


def test_a_copied_store_without_its_artifacts_is_left_pointing_at_them(
    pipeline_project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``mlflow.db`` copied alone: the original's artifacts are the only copy, so the
    locations stay, and the warning says the two projects share them."""
    copy = tmp_path / "store-only"
    copy.mkdir()
    shutil.copy(pipeline_project.root / "mlflow.db", copy / "mlflow.db")
    shutil.copy(pipeline_project.root / "params.yaml", copy / "params.yaml")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = load_settings(copy / "params.yaml")
    with caplog.at_level(logging.WARNING, logger="pipeline.tracking"):
        assert relocate_store(settings) == 0
    assert any("has no mlartifacts/ of its own" in r.getMessage() for r in caplog.records)
    champion = find_champion(client(settings), settings)
    assert load_model(f"models:/{champion.name}/{champion.version}", tracking_uri(settings))
