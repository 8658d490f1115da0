"""The champion's recorded history and rollback, against a real MLflow SQLite store.

Three tiny scikit-learn models are logged and registered once per module; each test gets
its own copy of that store (the SQLite file, in its own project folder with a
``params.yaml``), moves the champion alias as the promote stage or a rollback would, and
reads the registry back with an explicit client. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mlstack.cli import app
from pipeline.environment import TELEMETRY_OFF
from pipeline.promote import apply_decision, decide
from pipeline.registry import RegistryError, history, move_champion, rollback
from pipeline.settings import PROJECT_ROOT, PromoteSettings
from pipeline.tracking import log_skops_model

NAME = "tiny-classifier"
ALIAS = "champion"
GATE = PromoteSettings(
    metric="roc_auc",
    threshold=0.5,
    min_delta=0.01,
    min_recent_rows=100,
    max_test_drop=0.05,
    alias="champion",
)


@contextmanager
def mlflow_globals(uri: str) -> Iterator[None]:
    """MLflow's process-wide URIs (and the env vars it sets) on ``uri``, restored afterwards."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved = tracking_utils._tracking_uri, registry_utils._registry_uri
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        try:
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            yield
        finally:
            tracking_utils._tracking_uri, registry_utils._registry_uri = saved


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder whose store holds versions 1, 2 and 3 of ``NAME``, no alias yet."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("registry-template")
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["model"]["name"] = NAME
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]})
    y = [0, 0, 1, 0, 1, 1]
    with mlflow_globals(f"sqlite:///{root / 'mlflow.db'}"):
        experiment = mlflow.create_experiment(
            "training", artifact_location=(root / "mlartifacts" / "training").as_uri()
        )
        for c in (0.1, 1.0, 10.0):
            with mlflow.start_run(experiment_id=experiment):
                log_skops_model(LogisticRegression(C=c).fit(X, y), NAME, ["scikit-learn", "skops"])
    return root


@dataclass
class Store:
    root: Path
    client: Any

    @property
    def params(self) -> str:
        return str(self.root / "params.yaml")

    @property
    def champion(self) -> str | None:
        version = self.client.get_registered_model(NAME).aliases.get(ALIAS)
        return None if version is None else str(version)

    def tags(self, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(NAME, version).tags)

    def snapshot(self) -> dict[str, Any]:
        """Everything a refused change must leave as it was."""
        model = self.client.get_registered_model(NAME)
        versions = {v: self.tags(v) for v in ("1", "2", "3")}
        return {"aliases": dict(model.aliases), "tags": dict(model.tags), "versions": versions}

    def promote(self, *versions: str) -> None:
        for version in versions:
            move_champion(self.client, NAME, ALIAS, version, f"promoted: test v{version}")


@pytest.fixture
def store(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    """A copy of the template store in ``tmp_path``, the project's default embedded store."""
    from mlflow import MlflowClient

    for name in ("mlflow.db", "params.yaml"):
        shutil.copy(template / name, tmp_path / name)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return Store(tmp_path, MlflowClient(tracking_uri=uri, registry_uri=uri))


def test_promotion_records_the_change_on_the_version_and_the_model(store: Store) -> None:
    first = decide("1", 0.80, None, None, GATE)
    apply_decision(store.client, NAME, ALIAS, first)
    apply_decision(store.client, NAME, ALIAS, decide("2", 0.90, "1", 0.80, GATE))

    assert store.champion == "2"
    tags = store.tags("2")
    assert tags["champion.previous"] == "1"
    assert tags["champion.reason"] == (
        "promoted: beats champion v1 on the test split by +0.1000 (more than min_delta 0.01)"
    )
    assert tags["promotion.decision"] == "promoted" and tags["promotion.candidate_score"] == "0.9"
    since = datetime.fromisoformat(tags["champion.since"])
    assert since.tzinfo == UTC and datetime.now(UTC) - since < timedelta(minutes=5)
    assert store.tags("1")["champion.previous"] == ""

    found = history(store.client, NAME, ALIAS)
    assert found.champion == "2"
    assert [(c.version, c.previous, c.current) for c in found.changes] == [
        ("2", "1", True),
        ("1", None, False),
    ]
    assert found.changes[1].reason == "promoted: first model: no champion yet"
    assert (found.changes[0].metric, found.changes[0].score) == ("roc_auc", 0.90)


def test_rejection_or_an_unchanged_champion_records_nothing(store: Store) -> None:
    apply_decision(store.client, NAME, ALIAS, decide("1", 0.80, None, None, GATE))
    apply_decision(store.client, NAME, ALIAS, decide("2", 0.805, "1", 0.80, GATE))
    apply_decision(store.client, NAME, ALIAS, decide("1", 0.80, "1", 0.80, GATE))

    assert store.champion == "1"
    assert store.tags("2")["promotion.decision"] == "rejected"
    assert "champion.since" not in store.tags("2")
    assert [c.version for c in history(store.client, NAME, ALIAS).changes] == ["1"]


def test_rollback_goes_to_the_previous_champion_and_again_undoes_it(store: Store) -> None:
    store.promote("1", "2", "3")

    back = rollback(store.client, NAME, ALIAS)
    assert (back.version, back.previous, back.reason) == ("2", "3", "rollback from v3")
    assert store.champion == "2"
    assert store.tags("2")["champion.reason"] == "rollback from v3"
    assert store.tags("2")["champion.previous"] == "3"

    again = rollback(store.client, NAME, ALIAS)
    assert (again.version, again.reason) == ("3", "rollback from v2")
    changes = history(store.client, NAME, ALIAS).changes
    assert [(c.version, c.reason) for c in changes] == [
        ("3", "rollback from v2"),
        ("2", "rollback from v3"),
        ("3", "promoted: test v3"),
        ("2", "promoted: test v2"),
        ("1", "promoted: test v1"),
    ]
    assert [c.current for c in changes] == [True, False, False, False, False]


def test_rollback_to_a_named_version(store: Store) -> None:
    store.promote("1", "2", "3")
    change = rollback(store.client, NAME, ALIAS, to="1")
    assert (change.version, change.previous, change.reason) == ("1", "3", "rollback from v3")
    assert store.champion == "1"
    assert history(store.client, NAME, ALIAS).changes[0].version == "1"


def test_rollback_to_a_version_when_there_is_no_champion(store: Store) -> None:
    change = rollback(store.client, NAME, ALIAS, to="2")
    assert (change.previous, change.reason) == (None, "rollback to v2, no champion before")
    assert store.champion == "2"


REFUSALS = {
    "no previous champion": (("1",), None, "v1 has no previous champion recorded"),
    "no champion": ((), None, "has no champion: there is nothing to roll back"),
    "unknown version": (("1",), "9", "has no version '9' (registered versions: 1, 2, 3)"),
    "not a version": (("1",), "abc", "has no version 'abc'"),
    "already champion": (("1", "2"), "2", "v2 already is the champion"),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_refused_rollback_changes_nothing(store: Store, case: str) -> None:
    promoted, to, message = REFUSALS[case]
    store.promote(*promoted)
    before = store.snapshot()
    with pytest.raises(RegistryError, match=re.escape(message)):
        rollback(store.client, NAME, ALIAS, to=to)
    assert store.snapshot() == before


def test_rollback_of_an_unregistered_model_is_refused(store: Store) -> None:
    store.promote("1", "2")
    before = store.snapshot()
    with pytest.raises(RegistryError, match="no registered model named 'other-model'"):
        rollback(store.client, "other-model", ALIAS)
    with pytest.raises(RegistryError, match="no registered model named 'other-model'"):
        history(store.client, "other-model", ALIAS)
    assert store.snapshot() == before


def test_rollback_to_a_deleted_previous_champion_is_refused(store: Store) -> None:
    store.promote("1", "2")
    store.client.delete_model_version(NAME, "1")
    with pytest.raises(RegistryError, match="the previous champion is gone: .* no version '1'"):
        rollback(store.client, NAME, ALIAS)
    assert store.champion == "2"
    assert [c.version for c in history(store.client, NAME, ALIAS).changes] == ["2", "1"]


def invoke(*args: str, params: str) -> Any:
    """``mlstack model ARGS`` with ``params`` as the params file (``MLSTACK_PARAMS``)."""
    return CliRunner().invoke(app, ["model", *args], env={"MLSTACK_PARAMS": params})


def test_cli_history_as_json_and_as_a_table(store: Store) -> None:
    apply_decision(store.client, NAME, ALIAS, decide("1", 0.80, None, None, GATE))
    apply_decision(store.client, NAME, ALIAS, decide("2", 0.90, "1", 0.80, GATE))

    result = invoke("history", "--json", params=store.params)
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert (found["name"], found["alias"], found["champion"]) == (NAME, ALIAS, "2")
    assert [(c["version"], c["previous"], c["current"]) for c in found["changes"]] == [
        ("2", "1", True),
        ("1", None, False),
    ]
    assert found["changes"][0]["score"] == 0.90

    table = invoke("history", params=store.params)
    assert table.exit_code == 0, table.output
    rows = [line.split() for line in table.stdout.splitlines() if "promoted" in line]
    assert len(rows) == 2 and rows[0][:2] == ["*", "2"] and rows[1][0] == "1"
    assert "0.9000" in rows[0] and "0.8000" in rows[1]


def test_cli_history_of_a_champion_set_by_hand(store: Store) -> None:
    store.client.set_registered_model_alias(NAME, ALIAS, "3")
    result = invoke("history", "--json", params=store.params)
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["champion"] == "3" and found["changes"] == []


def test_cli_rollback_without_packaging(store: Store) -> None:
    store.promote("1", "2", "3")

    result = invoke("rollback", "--no-package", "--json", params=store.params)
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert done["packaged"] is None
    assert (done["change"]["previous"], done["change"]["version"]) == ("3", "2")
    assert done["change"]["reason"] == "rollback from v3"
    assert store.champion == "2"

    result = invoke("rollback", "--to", "v1", "--no-package", "--json", params=store.params)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["change"]["reason"] == "rollback from v2"
    assert store.champion == "1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "has no previous champion recorded"),
        (("--to", "7"), "has no version '7'"),
        (("--to", "1"), "v1 already is the champion"),
    ],
    ids=["no previous champion", "unknown version", "already champion"],
)
def test_cli_refusals_exit_2_and_change_nothing(
    store: Store, args: tuple[str, ...], message: str
) -> None:
    store.promote("1")
    before = store.snapshot()
    result = invoke("rollback", *args, "--no-package", params=store.params)
    assert result.exit_code == 2
    assert "refused, nothing changed:" in result.stderr and message in result.stderr
    assert store.snapshot() == before


def test_cli_refuses_a_model_not_registered(store: Store) -> None:
    params = yaml.safe_load(Path(store.params).read_text())
    params["model"]["name"] = "other-model"
    Path(store.params).write_text(yaml.safe_dump(params))
    result = invoke("rollback", "--no-package", params=store.params)
    assert result.exit_code == 2
    assert "no registered model named 'other-model'" in result.stderr


def test_cli_does_not_create_a_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    result = invoke("history", params=str(tmp_path / "params.yaml"))
    assert result.exit_code == 2
    assert "no MLflow store at" in result.stderr and "dvc repro" in result.stderr
    assert not (tmp_path / "mlflow.db").exists()


PACKAGE_THEN_ROLL_BACK = """
import json, sys
from typer.testing import CliRunner
import bentoml
from mlstack.cli import app
from pipeline.bento import import_champion
from pipeline.settings import load_settings
from pipeline.tracking import client, find_champion

settings = load_settings()  # MLSTACK_PARAMS
import_champion(settings, find_champion(client(settings), settings))  # as packaged
result = CliRunner().invoke(app, ["model", "rollback", "--json"])
latest = bentoml.models.get(f"{settings.model.name}:latest")
print(json.dumps({
    "exit_code": result.exit_code,
    "output": result.stdout,  # --json: one object on stdout (warnings go to stderr)
    "labels": latest.info.labels,
    "models": len(bentoml.models.list(settings.model.name)),
}))
"""


def test_cli_rollback_packages_the_new_champion_for_bentoml(store: Store, tmp_path: Path) -> None:
    """In a child process, so BentoML's store is the temporary one from the start."""
    store.promote("1", "2")
    env = {**os.environ, **TELEMETRY_OFF, "BENTOML_HOME": str(tmp_path / "bentoml")}
    env["MLSTACK_PARAMS"] = store.params
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(key, None)
    done = subprocess.run(
        [sys.executable, "-c", PACKAGE_THEN_ROLL_BACK],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["exit_code"] == 0, report["output"]
    done = json.loads(report["output"])
    assert done["change"]["reason"] == "rollback from v2"
    assert done["packaged"].startswith("tiny-classifier:")
    assert report["models"] == 2
    assert report["labels"]["version"] == "1"
    assert report["labels"]["registered_model"] == NAME
    assert store.champion == "1"
