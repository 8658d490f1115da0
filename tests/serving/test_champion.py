"""The champion follower against a real MLflow registry (a copy of the pipeline project's):
it swaps in a new champion, keeps the old one when the new one fails to load, and keeps
serving when there is no registry or it does not answer. The same follower runs in every
``bentoml serve`` worker (tests/integration/test_champion_reload.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipeline.registry import move_champion
from pipeline.settings import Settings
from pipeline.tracking import Champion, client, load_model
from serving.champion import ChampionFollower, serve_model
from tests.champions import add_tampered_version, add_version, champion_version, copy_registry
from tests.conftest import Project
from tests.process_metrics import sample

pytestmark = pytest.mark.slow  # the session's pipeline run

LOGGER = "serving.champion"


@pytest.fixture
def registry(pipeline_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A copy of the project's registry, named by ``MLFLOW_TRACKING_URI`` as a server's would be."""
    uri = copy_registry(pipeline_project, tmp_path / "registry")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def follower(settings: Settings, uri: str) -> ChampionFollower:
    """A follower serving the registry's champion, as a worker starts with the packed one."""
    name = settings.model.name
    version = champion_version(uri, name)
    model = load_model(f"models:/{name}/{version}", uri)
    return ChampionFollower(settings, serve_model(model, Champion(name, version, ""), settings))


def move(settings: Settings, version: str) -> None:
    move_champion(client(settings), settings.model.name, "champion", version, "test")


def test_a_moved_alias_is_followed_and_a_model_that_fails_to_load_leaves_the_old_one(
    pipeline_project: Project, registry: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = pipeline_project.settings
    name = settings.model.name
    following = follower(settings, registry)
    first = following.served
    assert following.poll() and following.served is first  # the alias has not moved

    second = add_version(registry, name)
    move(settings, second)
    assert following.poll()
    assert following.served.version == second != first.version
    assert sample("mlstack_model_info", name=name, version=second) == 1
    assert sample("mlstack_model_info", name=name, version=first.version) == 0

    marker = tmp_path / "pwned"
    tampered = add_tampered_version(registry, name, tmp_path / "tampered", marker)
    failures = sample("mlstack_model_reload_failures_total", reason="unsafe")
    move(settings, tampered)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert following.poll()
        assert following.poll()  # within the back-off: not tried again
    assert following.served.version == second  # the old model keeps serving
    assert not marker.exists(), "the tampered pickle ran"
    assert sample("mlstack_model_reload_failures_total", reason="unsafe") == failures + 1
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1 and f"v{tampered} not loaded" in warnings[0], warnings
    assert "UnsafeModel" in warnings[0] and f"v{second} keeps serving" in warnings[0]

    move(settings, second)  # the alias moves away and back: tried again at once
    assert following.poll() and following.served.version == second
    move(settings, tampered)
    assert following.poll() and following.served.version == second
    assert sample("mlstack_model_reload_failures_total", reason="unsafe") == failures + 2


def test_without_a_registry_the_packed_model_keeps_serving_and_polling_stops(
    pipeline_project: Project, registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Bento served away from the project: its params.yaml's folder has no store and no
    ``MLFLOW_TRACKING_URI`` is set."""
    settings = pipeline_project.settings
    following = follower(settings, registry)
    served = following.served
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    away = ChampionFollower(settings.model_copy(update={"root": tmp_path}), served)
    assert away.poll() is False
    assert away.served is served
    assert not (tmp_path / "mlflow.db").exists()  # no empty store made


def test_a_registry_that_does_not_answer_is_counted_and_logged_once(
    pipeline_project: Project,
    registry: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import socket

    settings = pipeline_project.settings
    following = follower(settings, registry)
    served = following.served
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    before = sample("mlstack_registry_poll_failures_total")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert following.poll() and following.poll()
    assert following.served is served
    assert sample("mlstack_registry_poll_failures_total") == before + 2
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1 and "does not answer" in warnings[0], warnings


def test_the_same_version_number_from_another_run_is_replaced_by_the_registrys(
    pipeline_project: Project, registry: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The probe's case: two projects sharing ``~/bentoml``; the worker started on the other
    project's packed "v2" (its labels name another run) and, since the registry's champion
    was also "v2", served it indefinitely. The run id tells them apart."""
    settings = pipeline_project.settings
    name = settings.model.name
    version = champion_version(registry, name)
    mine = client(settings).get_model_version(name, version).run_id
    model = load_model(f"models:/{name}/{version}", registry)
    other = Champion(name, version, "0" * 32)  # the other project's run, same number
    following = ChampionFollower(settings, serve_model(model, other, settings))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert following.poll()
        assert following.poll()
    assert following.served.run_id == mine and following.served.version == version
    said = [
        r.getMessage() for r in caplog.records if "a model of another project" in r.getMessage()
    ]
    assert len(said) == 1, said


def test_a_version_whose_model_folder_another_run_logged_is_refused_and_counted(
    pipeline_project: Project, registry: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A registry version that points at a model folder logged by another run (artifacts
    of another store: a copied project reading the original's) is not swapped in."""
    settings = pipeline_project.settings
    name = settings.model.name
    following = follower(settings, registry)
    served = following.served
    store = client(settings)
    champion = store.get_model_version_by_alias(name, "champion")
    experiment = store.get_run(champion.run_id).info.experiment_id
    stranger = store.create_run(experiment).info.run_id
    location = store.get_model_version_download_uri(name, str(champion.version))
    foreign = str(store.create_model_version(name, location, run_id=stranger).version)
    before = sample("mlstack_model_reload_failures_total", reason="foreign")
    move(settings, foreign)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert following.poll()
    assert following.served is served, "the served model stays"
    assert sample("mlstack_model_reload_failures_total", reason="foreign") == before + 1
    assert any(
        "ForeignModel" in r.getMessage() and stranger in r.getMessage() for r in caplog.records
    )
