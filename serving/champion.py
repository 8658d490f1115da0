"""The model a worker serves, and following the registry's champion alias without a restart.

Everything a worker derives from one model version (its classes, probability columns,
the categories it knows, its Prometheus series) is built once into a frozen
:class:`ServedModel`. The service reads :attr:`ChampionFollower.served` once per batch
and once per request, so a batch is scored, answered and captured by one version, and
swapping the champion is replacing that one reference: no lock, no failed request.

With ``serving.reload_seconds`` > 0, a thread in each worker asks the registry that often
where ``promote.alias`` of ``model.name`` points (``pipeline.tracking.client``: the
project's store, or ``MLFLOW_TRACKING_URI``). When it names another model than the one
served (another version, or the same number from another run: :func:`same_model`), that
version is downloaded, loaded by ``pipeline.tracking.load_model`` (skops with
the reviewed types only), checked against the feature schema by one prediction, and only
then swapped in. The promote stage, ``mlstack retrain`` and ``mlstack model rollback`` all
move the alias, so a running server follows all three the same way.

What can go wrong leaves the served model in place and is reported, once per cause:

- the new version does not load (download error, refused as unsafe, wrong features, a
  model folder another run logged than the one the registry names: ``foreign``):
  one WARNING line naming the version and why, ``mlstack_model_reload_failures_total``
  by reason; the same version is tried again after a back-off that doubles per failure
  (``reload_seconds`` x 2, 4, ... up to x :data:`MAX_BACKOFF`), at once if the alias moves;
- the registry does not answer: ``mlstack_registry_poll_failures_total``, a WARNING when it
  stops answering and an INFO line when it answers again;
- the registry has no such model or alias: one WARNING, polling goes on (a champion may
  be promoted later);
- there is no registry at all (a Bento served away from the project, no
  ``MLFLOW_TRACKING_URI``): one WARNING and the thread ends; the packed model serves.

``mlstack_model_info`` says which version each worker serves (1; 0 for the one it replaced).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sklearn.base import is_regressor

from pipeline.interval import HALF_WIDTH_TAG, Interval
from pipeline.labels import normalize_label
from pipeline.schema import proba_column
from pipeline.settings import Settings
from pipeline.tracking import (
    Champion,
    ForeignModel,
    StoreNotFound,
    UnsafeModel,
    client,
    find_champion,
    load_model,
    tracking_uri,
)
from serving import service_metrics
from serving.inputs import known_categories

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

# A version that failed to load is tried again after reload_seconds x 2**failures, at most
# this many times reload_seconds (10 s: about 5 minutes), unless the alias moves first.
MAX_BACKOFF = 32
# MLflow's answers for "no such registered model" and "no such alias".
NO_CHAMPION_CODES = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")

# Something per model computed once at load and kept beside it (say, a compiled input
# path): called with the loaded model and the settings, stored as ServedModel.prepared.
Prepare = Callable[[Any, Settings], Any]


class IncompatibleModel(ValueError):
    """A model that loads but cannot answer this service's requests (its features or its
    output do not match ``params.yaml``)."""


@dataclass(frozen=True)
class ServedModel:
    """One model version and everything the service derives from it, swapped as one."""

    name: str
    version: str
    run_id: str
    model: Any
    classes: list[str]
    proba_columns: list[str]
    known: dict[str, frozenset[str]]  # categories per column, for unknown-category refusal
    predicted: dict[str, Any]  # mlstack_predictions series per class, of this version
    probability: dict[str, Any]  # mlstack_prediction_probability series per class
    prepared: Any = None  # what the service's Prepare hook built for this model, if any
    # A regressor (``classes`` empty): its interval and mlstack_predicted_value series.
    interval: Interval | None = None
    value: Any = None

    @property
    def regressor(self) -> bool:
        return self.interval is not None


def _probe(model: Any, settings: Settings) -> Any:
    """One prediction on a row of missing values, built as the service builds its frames:
    a model that cannot score the schema's columns is refused before it serves."""
    import pandas as pd

    features = settings.data.features
    frame = pd.DataFrame.from_records([dict.fromkeys(features.all)], columns=features.all)
    for column in features.numerical:
        frame[column] = frame[column].astype("float64")
    return model.predict(frame) if is_regressor(model) else model.predict_proba(frame)


def _regressor(
    model: Any, champion: Champion, settings: Settings, prepare: Prepare | None
) -> ServedModel:
    """A regressor and its interval (the version's tags, or the packed model's labels): one
    without the interval is refused, since every answer carries it."""
    try:
        interval = Interval.from_tags(champion.tags)
        known = known_categories(model, settings.data.features.categorical)
        shape = getattr(_probe(model, settings), "shape", None)
    except (AttributeError, ValueError, TypeError, KeyError) as error:
        raise IncompatibleModel(f"cannot score this schema's rows: {error}") from None
    if interval is None:
        raise IncompatibleModel(
            f"a regressor without its interval (no {HALF_WIDTH_TAG} tag on the version): "
            "the evaluate stage sets it; run `dvc repro`"
        )
    if shape != (1,):
        raise IncompatibleModel(f"predict gave shape {shape}, not one number per row")
    version = champion.version
    return ServedModel(
        name=champion.name,
        version=version,
        run_id=champion.run_id,
        model=model,
        classes=[],
        proba_columns=[],
        known=known,
        predicted={},
        probability={},
        prepared=prepare(model, settings) if prepare is not None else None,
        interval=interval,
        value=service_metrics.PREDICTED_VALUE.labels(model_version=version),
    )


def serve_model(
    model: Any,
    champion: Champion,
    settings: Settings,
    prepare: Prepare | None = None,
) -> ServedModel:
    """Check ``model`` against the feature schema and build everything served with it."""
    features = settings.data.features
    expected = sorted(features.all)
    names = getattr(model, "feature_names_in_", None)
    if names is not None and sorted(str(n) for n in names) != expected:
        raise IncompatibleModel(f"trained on columns {sorted(map(str, names))}, not {expected}")
    if settings.data.is_regression != is_regressor(model):
        raise IncompatibleModel(
            f"a {'regressor' if is_regressor(model) else 'classifier'} for a "
            f"{settings.data.task} task (data.task)"
        )
    if is_regressor(model):
        return _regressor(model, champion, settings, prepare)
    try:
        classes = [normalize_label(c) for c in model.classes_]
        known = known_categories(model, features.categorical)
        shape = getattr(_probe(model, settings), "shape", None)
    except (AttributeError, ValueError, TypeError, KeyError) as error:
        raise IncompatibleModel(f"cannot score this schema's rows: {error}") from None
    if shape != (1, len(classes)):
        raise IncompatibleModel(f"predict_proba gave shape {shape} for {len(classes)} classes")
    version = champion.version
    return ServedModel(
        name=champion.name,
        version=version,
        run_id=champion.run_id,
        model=model,
        classes=classes,
        proba_columns=[proba_column(c) for c in classes],
        known=known,
        predicted={
            c: service_metrics.PREDICTIONS.labels(model_version=version, label=c) for c in classes
        },
        probability={
            c: service_metrics.PROBABILITY.labels(model_version=version, label=c) for c in classes
        },
        prepared=prepare(model, settings) if prepare is not None else None,
    )


def _show(served: ServedModel, replaced: ServedModel | None) -> None:
    """``mlstack_model_info``: 1 for the version served, 0 for the one it replaced."""
    if replaced is not None:
        service_metrics.MODEL_INFO.labels(
            name=replaced.name, version=replaced.version, run_id=replaced.run_id
        ).set(0)
    service_metrics.MODEL_INFO.labels(
        name=served.name, version=served.version, run_id=served.run_id
    ).set(1)


def _failure_reason(error: Exception) -> str:
    if isinstance(error, UnsafeModel):
        return "unsafe"
    if isinstance(error, IncompatibleModel):
        return "incompatible"
    if isinstance(error, ForeignModel):
        return "foreign"
    return "load"


def same_model(found: Champion, served: ServedModel) -> bool:
    """Whether the registry's champion is the model served: the same version number AND,
    where both are known, the same run. A version number alone is not an identity: a Bento
    packed by another project (a shared BentoML home) or another store also has a "v2"."""
    if found.version != served.version:
        return False
    return not (found.run_id and served.run_id) or found.run_id == served.run_id


class ChampionFollower:
    """Holds the model a worker serves and, when started, follows the registry's alias."""

    def __init__(
        self,
        settings: Settings,
        served: ServedModel,
        prepare: Prepare | None = None,
        on_swap: Callable[[ServedModel], None] | None = None,
    ) -> None:
        self.settings = settings
        self.served = served  # the one reference the service reads
        self._prepare = prepare
        self._on_swap = on_swap
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._registry: MlflowClient | None = None
        self._condition: str | None = None  # the trouble last logged, logged once
        self._failing: tuple[str, int, float] | None = None  # version, failures, retry time
        self._noted_run = ""  # the registry run last said to differ from the served one
        _show(served, None)
        if on_swap is not None:
            on_swap(served)

    @property
    def interval(self) -> float:
        return self.settings.serving.reload_seconds

    def start(self) -> ChampionFollower:
        """Poll in a daemon thread every ``serving.reload_seconds`` (nothing when 0).

        MLflow is imported by the first poll, in that thread, not before the worker is
        ready: its import costs seconds of CPU per worker, which every start (and every
        readiness deadline) would pay; requests meanwhile share the interpreter with it.
        """
        if self.interval > 0 and self._thread is None:
            # A swap is news to whoever runs the server: shown although BentoML's servers
            # log only warnings outside its own loggers.
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.INFO)

            self._thread = threading.Thread(target=self._run, name="champion", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)  # a download in flight is abandoned with the process

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.poll():
                return

    def _note(self, condition: str, message: str, *args: Any) -> None:
        """Log a trouble once, until it changes or clears."""
        if self._condition != condition:
            self._condition = condition
            logger.warning(message, *args)

    def poll(self) -> bool:
        """Look at the registry once and swap if the champion moved; ``False`` when there is
        no registry to follow."""
        settings = self.settings
        name, alias = settings.model.name, settings.promote.alias
        try:
            if self._registry is None:
                self._registry = client(settings)
            found = find_champion(self._registry, settings)
        except StoreNotFound as error:
            logger.warning(
                "not following %s@%s: %s; serving v%s until restarted",
                name,
                alias,
                " ".join(str(error).split()),
                self.served.version,
            )
            return False
        except Exception as error:
            if getattr(error, "error_code", None) in NO_CHAMPION_CODES:
                self._note(
                    "no champion",
                    "the registry has no %s@%s; v%s keeps serving",
                    name,
                    alias,
                    self.served.version,
                )
            else:
                service_metrics.REGISTRY_POLL_FAILURES.inc()
                self._note(
                    "unreachable",
                    "the registry does not answer (%s: %s); v%s keeps serving",
                    type(error).__name__,
                    " ".join(str(error).split())[:200],
                    self.served.version,
                )
            return True
        if self._condition is not None:
            logger.info("the registry answers again: %s@%s is v%s", name, alias, found.version)
            self._condition = None
        if same_model(found, self.served):
            self._failing = None  # the alias came back: a version it moves to next is tried
        else:
            if found.version == self.served.version and self._noted_run != found.run_id:
                self._noted_run = found.run_id  # said once, not at every poll of a back-off
                logger.warning(
                    "the served v%s (run %s) is not %s@%s v%s (run %s): a model of another "
                    "project or store; loading this registry's",
                    self.served.version,
                    self.served.run_id,
                    name,
                    alias,
                    found.version,
                    found.run_id,
                )
            self._swap(found)
        return True

    def _swap(self, found: Champion) -> None:
        """Load ``found`` and serve it, unless it failed lately and its back-off is not over."""
        failing = self._failing
        if failing is not None and failing[0] == found.version and time.monotonic() < failing[2]:
            return
        failures = failing[1] if failing is not None and failing[0] == found.version else 0
        settings = self.settings
        try:
            model = load_model(
                f"models:/{found.name}/{found.version}",
                store=tracking_uri(settings),
                run_id=found.run_id,
            )
            served = serve_model(model, found, settings, self._prepare)
            if served.classes != self.served.classes:  # the capture log keeps one column set
                raise IncompatibleModel(
                    f"classes {served.classes} differ from the served {self.served.classes}: "
                    "a new set of classes needs a restart"
                )
        except Exception as error:
            failures += 1
            delay = self.interval * min(2**failures, MAX_BACKOFF)
            self._failing = (found.version, failures, time.monotonic() + delay)
            service_metrics.MODEL_RELOAD_FAILURES.labels(reason=_failure_reason(error)).inc()
            logger.warning(
                "champion %s v%s not loaded, v%s keeps serving: %s: %s (next try in %.0fs, "
                "or when the alias moves)",
                found.name,
                found.version,
                self.served.version,
                type(error).__name__,
                " ".join(str(error).split())[:300],
                delay,
            )
            return
        self._failing = None
        replaced, self.served = self.served, served
        _show(served, replaced)
        if self._on_swap is not None:
            self._on_swap(served)
        service_metrics.MODEL_RELOADS.inc()
        logger.info(
            "now serving %s v%s (run %s), was v%s",
            served.name,
            served.version,
            served.run_id,
            replaced.version,
        )
