"""Where MLflow keeps runs and models, the client made from settings, and the one model loader.

By default the store is embedded: a SQLite file and an artifact folder inside the
project, ignored by git, which ``mlflow ui`` opens as is. ``MLFLOW_TRACKING_URI`` in the
environment points everything at a tracking server instead.

Every place that looks up the champion uses :func:`client` and :func:`find_champion`
(an explicit ``MlflowClient``, never MLflow's process-wide URI), and every model load
goes through :func:`load_model`, which accepts skops with the reviewed trusted types and
refuses anything else before a byte of it is deserialised.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import environment
from pipeline.environment import TELEMETRY_OFF
from pipeline.paths import MLFLOW_ARTIFACTS, MLFLOW_DB
from pipeline.settings import Settings

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from mlflow import MlflowClient

TRAINING_EXPERIMENT = "training"
MONITORING_EXPERIMENT = "monitoring"

# Types skops may load beyond its built-in safe list, reviewed for the three estimators
# the factory builds: numpy dtypes and the fitted tree structures of scikit-learn's
# forests and histogram gradient boosting. Any other type fails to load: a new estimator
# means reviewing `skops.io.get_untrusted_types` output and extending this list.
SKOPS_TRUSTED_TYPES = [
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
]
SKOPS_FORMAT = "skops"


def log_skops_model(
    model: Any, registered_model_name: str, pip_requirements: list[str], **extra: Any
) -> Any:
    """``mlflow.sklearn.log_model`` as every model here is logged: skops, never pickle, with
    the reviewed trusted types, under the run's ``model`` folder, registered as a new version
    of ``registered_model_name``; ``extra`` (signature, input example) passed on."""
    import mlflow

    return mlflow.sklearn.log_model(
        model,
        name="model",
        serialization_format=SKOPS_FORMAT,
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        registered_model_name=registered_model_name,
        pip_requirements=pip_requirements,
        **extra,
    )


class StoreNotFound(RuntimeError):
    """The embedded MLflow store does not exist: nothing was trained on this machine yet."""


class UnsafeModel(ValueError):
    """A model folder that is not skops with the reviewed trusted types; nothing was loaded."""


class ForeignModel(ValueError):
    """A model folder logged by another run than the one the registry names for it."""


@dataclass(frozen=True)
class Champion:
    """The registered model version the champion alias points at, and its tags (a
    regressor's interval among them: pipeline/interval.py)."""

    name: str
    version: str
    run_id: str
    tags: Mapping[str, str] = field(default_factory=dict)


# MLflow output nobody can act on, turned off at its cause:
QUIET_MLFLOW = {
    # A progress bar per model load, on every stage and drift run.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # log_model copies uv.lock and pyproject.toml into every model (and logs that it did):
    # the model pins its own requirements (train.requirements) and the lock is in git at
    # the revision the run is tagged with.
    "MLFLOW_LOG_UV_FILES": "false",
    # ...and looks for a uv project on every logged model to infer requirements we give.
    "MLFLOW_UV_AUTO_DETECT": "false",
    # With a tracking server (not the embedded store), every finished run writes
    # "View run ... at: URL" to stdout, which breaks `--json`'s one object on stdout.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


class _PipVersionUnknown(logging.Filter):
    """MLflow warns, on every logged model, that it cannot find pip's version: uv made the
    environment and it has no pip. The model's conda.yaml then lists pip unpinned, which
    changes nothing for a model served from its pinned requirements."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Failed to resolve installed pip version" not in record.getMessage()


def disable_telemetry() -> None:
    """No tool phones home: these machines, and many users', have no internet. MLflow's
    noise goes too (:data:`QUIET_MLFLOW`)."""
    for key, value in {**TELEMETRY_OFF, **QUIET_MLFLOW}.items():
        os.environ.setdefault(key, value)
    logging.getLogger("mlflow.utils.environment").addFilter(_PipVersionUnknown())


# The URI configure() last set. MLflow copies it into MLFLOW_TRACKING_URI (so child
# processes inherit it); it must not then pass for the user's own setting, or the next
# project configured in this process would silently use the first one's store.
_configured_uri: str | None = None


def _user_uri() -> str | None:
    uri = os.environ.get(environment.MLFLOW_TRACKING_URI)
    return None if not uri or uri == _configured_uri else uri


def embedded_store(settings: Settings) -> Path:
    return settings.path(MLFLOW_DB)


def tracking_uri(settings: Settings) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the embedded SQLite store under the project root."""
    return _user_uri() or f"sqlite:///{embedded_store(settings)}"


def artifact_location(settings: Settings) -> str:
    return settings.path(MLFLOW_ARTIFACTS).resolve().as_uri()


# Where the embedded store records a location on disk, per MLflow table; tables or
# columns an MLflow version lacks are skipped.
LOCATED_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("logged_models", "artifact_location"),
    ("datasets", "dataset_source"),
)


_shared_stores: set[Path] = set()  # stores found using another project's artifacts


def _recorded_root(locations: list[str], root: Path) -> Path | None:
    """The project root the store's mlstack-made experiments live under, when not ``root``."""
    for location in locations:
        path = Path(location.removeprefix("file://"))
        if path.parent.name == MLFLOW_ARTIFACTS and path.is_absolute():
            recorded = path.parent.parent
            if recorded != root:
                return recorded
    return None


def _rewrite_locations(connection: Any, old: str, new: str) -> int:
    """Replace the ``old`` root by ``new`` in every located column, in one transaction."""
    import sqlite3

    changed = 0
    with connection:  # one transaction: all of it or nothing
        for table, column in LOCATED_COLUMNS:
            try:
                cursor = connection.execute(
                    f"UPDATE {table} SET {column} = replace({column}, ?, ?) "  # noqa: S608
                    f"WHERE instr({column}, ?) > 0",
                    (old, new, old),
                )
            except sqlite3.OperationalError:
                continue  # this MLflow version has no such table or column
            changed += cursor.rowcount
    return changed


def relocate_store(settings: Settings) -> int:
    """Make the embedded store's recorded locations point into this project; return the
    values changed (0 when nothing was recorded elsewhere).

    MLflow records absolute paths (experiments' artifact folders, runs', model versions',
    training datasets'). A project copied or moved with its ``mlflow.db`` would otherwise go
    on reading, and writing, the first folder's ``mlartifacts``. Every :func:`client` and
    :func:`configure` of the embedded store calls this: one query when nothing moved; after
    a move one transaction rewrites the old root to the new one, and says so. A copy of
    ``mlflow.db`` alone (no ``mlartifacts/`` here) is left pointing at the original's
    artifacts, with a warning: they are the only copy. (The
    ``artifact_path`` inside each ``MLmodel`` is informational: nothing loads by it.)
    """
    import sqlite3
    from contextlib import closing

    db = embedded_store(settings)
    if not db.is_file() or db.stat().st_size == 0:
        return 0
    root = settings.root.resolve()
    with closing(sqlite3.connect(db, timeout=30)) as connection:
        try:
            locations = [
                r[0] for r in connection.execute("SELECT artifact_location FROM experiments")
            ]
        except sqlite3.Error:
            return 0  # not an MLflow store yet (or not one this knows)
        recorded = _recorded_root([str(x) for x in locations if x], root)
        if recorded is None:
            return 0
        if not settings.path(MLFLOW_ARTIFACTS).is_dir():
            if db in _shared_stores:
                return 0
            _shared_stores.add(db)  # said once per process, not at every client
            logger.warning(
                "the MLflow store %s records its artifacts under %s and this project has no "
                "%s/ of its own: it reads and writes those; copy %s/ along to keep them apart",
                db,
                recorded,
                MLFLOW_ARTIFACTS,
                MLFLOW_ARTIFACTS,
            )
            return 0
        changed = _rewrite_locations(connection, f"{recorded}/", f"{root}/")
    logger.warning(
        "the MLflow store %s recorded its artifacts under %s: this project moved or was copied; "
        "%d location(s) now point under %s",
        db,
        recorded,
        changed,
        root,
    )
    return changed


def client(settings: Settings) -> MlflowClient:
    """A client on the project's store; refuses to create an empty embedded store.

    Reading the registry or logging a monitoring run into a store that was never trained
    into would silently make a new, empty one: :class:`StoreNotFound` says so instead.
    """
    from mlflow import MlflowClient

    disable_telemetry()
    uri = tracking_uri(settings)
    if _user_uri() is None and not embedded_store(settings).exists():
        raise StoreNotFound(
            f"no MLflow store at {embedded_store(settings)}: run `dvc repro` first, or set "
            "MLFLOW_TRACKING_URI to your tracking server"
        )
    if _user_uri() is None:
        relocate_store(settings)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(registry: MlflowClient, settings: Settings, name: str) -> str:
    """The id of experiment ``name``, created if needed (artifacts: :func:`_new_location`)."""
    existing = registry.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    return str(registry.create_experiment(name, artifact_location=_new_location(settings, name)))


def _new_location(settings: Settings, experiment: str) -> str | None:
    """Where a new experiment keeps its artifacts: inside the project for the embedded
    store; beside the database for a ``sqlite:///`` store named by ``MLFLOW_TRACKING_URI``
    (MLflow's default, ``./mlruns``, depends on the folder the first command ran in); the
    server's default for a tracking server."""
    uri = _user_uri()
    if uri is None:
        return f"{artifact_location(settings)}/{experiment}"
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///")).resolve()
        return (database.parent / MLFLOW_ARTIFACTS / experiment).as_uri()
    return None


def configure(settings: Settings, experiment: str = TRAINING_EXPERIMENT) -> Any:
    """Point MLflow's fluent API (``start_run``, ``log_model``) at the store and select
    ``experiment``, creating both if needed. Only the stages that log their own run (train,
    evaluate) need this; everything else uses :func:`client`."""
    import mlflow
    from mlflow import MlflowClient

    global _configured_uri
    disable_telemetry()
    embedded = _user_uri() is None
    uri = tracking_uri(settings)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    _configured_uri = uri if embedded else None
    if embedded:
        relocate_store(settings)
    experiment_id(MlflowClient(tracking_uri=uri, registry_uri=uri), settings, experiment)
    return mlflow.set_experiment(experiment)


def champion_uri(settings: Settings) -> str:
    return f"models:/{settings.model.name}@{settings.promote.alias}"


def find_champion(registry: MlflowClient, settings: Settings) -> Champion:
    """The version the champion alias points at (MLflow's error if there is none)."""
    found = registry.get_model_version_by_alias(settings.model.name, settings.promote.alias)
    return Champion(
        name=found.name,
        version=str(found.version),
        run_id=str(found.run_id or ""),
        tags=dict(found.tags or {}),
    )


def logging_run(folder: Path) -> str:
    """The run that logged the MLflow model in ``folder``, as its ``MLmodel`` says ("" if none)."""
    import yaml

    try:
        return str(yaml.safe_load((folder / "MLmodel").read_text()).get("run_id") or "")
    except (OSError, AttributeError, yaml.YAMLError):
        return ""


def model_file(folder: Path) -> Path:
    """The skops file of an MLflow model folder, after checking what its ``MLmodel`` says.

    The folder's own ``MLmodel`` chooses the format MLflow would load it with, pickle
    included: it is read here as data and anything but skops is refused.
    """
    import yaml

    mlmodel = folder / "MLmodel"
    try:
        flavors = yaml.safe_load(mlmodel.read_text()).get("flavors") or {}
    except (OSError, AttributeError, yaml.YAMLError) as error:
        raise UnsafeModel(f"{folder}: no readable MLmodel file ({error})") from None
    sklearn = flavors.get("sklearn")
    if not isinstance(sklearn, dict):
        raise UnsafeModel(f"{folder}: not a scikit-learn model (no sklearn flavor in MLmodel)")
    form = sklearn.get("serialization_format", "pickle")
    if form != SKOPS_FORMAT:
        raise UnsafeModel(
            f"{folder}: the model is serialised as {form!r}; only {SKOPS_FORMAT!r} with the "
            "reviewed trusted types is loaded (pickle runs code on load)"
        )
    name = str(sklearn.get("pickled_model", ""))
    file = (folder / name).resolve()
    if not name or file.parent != folder.resolve() or not file.is_file():
        raise UnsafeModel(f"{folder}: MLmodel names no model file inside the folder ({name!r})")
    return file


def download_model(source: str, store: str | None, destination: str) -> Path:
    """A logged model's folder, downloaded from the store at tracking URI ``store``.

    ``models:/NAME@ALIAS`` and ``models:/NAME/VERSION`` are resolved here with an explicit
    client: MLflow's own resolver looks registered models up in the process-wide
    registry (the working folder's ``mlflow.db`` when nothing is set) whatever registry it
    is given, and would fail, or find another store's model of the same name.
    """
    import mlflow.artifacts
    from mlflow import MlflowClient

    disable_telemetry()
    location = source
    if source.startswith("models:/"):
        registry = MlflowClient(tracking_uri=store, registry_uri=store)
        reference = source.removeprefix("models:/")
        if "@" in reference:
            name, alias = reference.split("@", 1)
            version = str(registry.get_model_version_by_alias(name, alias).version)
        else:
            name, version = reference.rsplit("/", 1)
        location = registry.get_model_version_download_uri(name, version)
    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=destination, tracking_uri=store
        )
    )


def load_model(source: str | Path, store: str | None = None, run_id: str = "") -> Any:
    """The one way a model is loaded: a local MLflow model folder, or a ``models:/`` or
    ``runs:/`` URI downloaded first from ``store`` (a tracking URI, such as
    :func:`tracking_uri` of the settings).

    Refuses, with :class:`UnsafeModel`, a folder whose ``MLmodel`` asks for another format
    and a skops file holding types outside :data:`SKOPS_TRUSTED_TYPES`; with ``run_id``,
    refuses with :class:`ForeignModel` a folder that run did not log (its ``MLmodel``
    names another run), before reading the model file.
    """
    import skops.io

    folder = Path(source)
    with tempfile.TemporaryDirectory(prefix="mlstack-model-") as scratch:
        if not folder.is_dir():
            folder = download_model(str(source), store, scratch)
        file = model_file(folder)
        if run_id:
            logged_by = logging_run(folder)
            if logged_by != run_id:
                raise ForeignModel(
                    f"{source}: the registry names run {run_id} but the model folder was "
                    f"logged by run {logged_by or '(none)'}: another store's artifacts?"
                )
        untrusted = sorted(set(skops.io.get_untrusted_types(file=file)) - set(SKOPS_TRUSTED_TYPES))
        if untrusted:
            raise UnsafeModel(f"{source}: the model holds unreviewed types: {', '.join(untrusted)}")
        return skops.io.load(file, trusted=SKOPS_TRUSTED_TYPES)
