"""Typed settings loaded once from ``params.yaml``.

Every knob of the project lives in ``params.yaml``, one section per concern. This
module turns that file into validated objects, so that a wrong key or a wrong type
fails at start-up with a message naming the key, instead of deep inside a stage.
Secrets and endpoints (tracking URI, Pushgateway URL, S3 credentials) never come from
here: they come from the environment.

``params.yaml`` is the one source of truth: no knob of a section has a default in code,
so a key deleted from the file is an error naming it, never a silent change of
behaviour. The defaults that do exist are "absent means none", in entries whose keys the
user names, not knobs every run reads: a column's drift override (``ColumnDrift``:
``None`` is Evidently's own method or threshold, so an override names only what it
changes), a replay scenario's fields (``Scenario``: a scenario lists only the shifts it
injects; no filter, no sample, no shift is the default) and the ``scenarios`` section as a
whole (optional: a project need not replay anything). Outside this module, the capture
log's ``CaptureWriter`` has constructor defaults for its tests and benchmarks; the
service builds it from ``capture:`` here, every value passed. The file is chosen one
way, here: ``$MLSTACK_PARAMS`` if set, else the ``params.yaml`` beside the code.
Deployment overrides come from the environment too, so the service and the drift job
agree on them: ``MLSTACK_CAPTURE_PATH`` (and ``MLSTACK_CAPTURE_SEGMENTS``) and ``MLSTACK_WORKERS``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from pipeline import environment
from pipeline.drift_settings import ColumnDrift, DriftSettings
from pipeline.labels import normalize_label
from pipeline.paths import PARAMS_FILE
from pipeline.section import Section as _Section
from pipeline.tasks import ESTIMATOR_TASK, HIGHER_IS_BETTER, TASK_METRICS, Task

__all__ = ["ColumnDrift", "DriftSettings"]  # re-exported: their home is pipeline.drift_settings

# The folder that holds the code (and, unless MLSTACK_PARAMS says otherwise, params.yaml).
PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXIT_BAD_SETTINGS = 2


class SettingsError(ValueError):
    """``params.yaml`` is missing, unreadable or does not match the expected shape."""


class Features(_Section):
    numerical: list[str]
    categorical: list[str]

    @model_validator(mode="after")
    def _distinct(self) -> Features:
        both = set(self.numerical) & set(self.categorical)
        if both:
            raise ValueError(f"columns listed as both numerical and categorical: {sorted(both)}")
        if not self.numerical and not self.categorical:
            raise ValueError("no feature columns: list at least one numerical or categorical")
        return self

    @property
    def all(self) -> list[str]:
        return [*self.numerical, *self.categorical]


class Split(_Section):
    test_size: Annotated[float, Field(gt=0, lt=1)]
    stratify: bool


class DataSettings(_Section):
    path: str
    task: Task
    target: str
    id: str | None
    timestamp: str | None
    classes: list[str] | None
    drop: list[str]
    features: Features
    ranges: dict[str, tuple[float, float]]
    split: Split
    seed: int

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_as_labels(cls, value: Any) -> Any:
        return None if value is None else [normalize_label(v) for v in value]

    @model_validator(mode="after")
    def _classes_match_the_task(self) -> DataSettings:
        if self.task == "regression" and self.classes is not None:
            raise ValueError(
                "data.classes: a regression task has no classes (remove the key or set it "
                "to null), or set data.task: classification"
            )
        if self.task == "classification" and not self.classes:
            raise ValueError(
                "data.classes: a classification task lists its classes (e.g. [0, 1]), "
                "or set data.task: regression for a numeric target"
            )
        if self.task == "regression" and self.split.stratify:
            raise ValueError(
                "data.split.stratify: a numeric target cannot be stratified; set it to false"
            )
        return self

    @property
    def is_regression(self) -> bool:
        return self.task == "regression"

    @model_validator(mode="after")
    def _ranges_are_numerical(self) -> DataSettings:
        unknown = set(self.ranges) - set(self.features.numerical)
        if unknown:
            raise ValueError(f"ranges given for non-numerical columns: {sorted(unknown)}")
        return self


class ModelSettings(_Section):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")]


class HistGradientBoosting(_Section):
    max_iter: Annotated[int, Field(gt=0)]
    learning_rate: Annotated[float, Field(gt=0)]
    max_leaf_nodes: Annotated[int, Field(gt=1)] | None
    max_depth: Annotated[int, Field(gt=0)] | None
    min_samples_leaf: Annotated[int, Field(gt=0)]
    l2_regularization: Annotated[float, Field(ge=0)]
    early_stopping: bool | Literal["auto"]


class LogisticRegression(_Section):
    C: Annotated[float, Field(gt=0)]
    max_iter: Annotated[int, Field(gt=0)]


class RandomForest(_Section):
    n_estimators: Annotated[int, Field(gt=0)]
    max_depth: Annotated[int, Field(gt=0)] | None
    min_samples_leaf: Annotated[int, Field(gt=0)]
    n_jobs: int | None


class Ridge(_Section):
    alpha: Annotated[float, Field(ge=0)]


Estimator = Literal["hist_gradient_boosting", "logistic_regression", "random_forest", "ridge"]


class TrainSettings(_Section):
    """The estimator by name: the task (``data.task``) picks its classifier or regressor."""

    estimator: Estimator
    hist_gradient_boosting: HistGradientBoosting
    logistic_regression: LogisticRegression
    random_forest: RandomForest
    ridge: Ridge

    def hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters of the chosen estimator only."""
        section: BaseModel = getattr(self, self.estimator)
        return section.model_dump()


class EvaluateSettings(_Section):
    """The evaluate stage: how hard it looks at which features the candidate relies on."""

    importance_repeats: Annotated[int, Field(gt=0)]
    importance_rows: Annotated[int, Field(gt=0)] | None  # None: the whole test split
    # regression: the nominal coverage of the split-conformal prediction intervals
    interval_coverage: Annotated[float, Field(gt=0, lt=1)]


class PromoteSettings(_Section):
    """The gate. ``threshold`` is the absolute bar on the test split: at least it for a
    higher-is-better metric, at most it for a lower-is-better one (``None``: no bar, only
    ``min_delta`` against the champion)."""

    metric: Literal["roc_auc", "accuracy", "f1", "log_loss", "rmse", "mae", "r2", "mape"]
    threshold: float | None
    min_delta: Annotated[float, Field(ge=0)]
    # after a retrain: the fewest recent rows the gate judges on, and how much the candidate
    # may lose to the champion on the old test split (a concept change costs some:
    # docs/retraining.md)
    min_recent_rows: Annotated[int, Field(ge=1)]
    max_test_drop: Annotated[float, Field(ge=0)]
    alias: str

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, value: Any) -> Any:
        if isinstance(value, dict) and "min_score" in value:
            raise ValueError(
                "promote.min_score was renamed promote.threshold (the same bar, read the "
                "metric's way: at least it for roc_auc, at most it for rmse; null: none)"
            )
        return value

    @property
    def higher_is_better(self) -> bool:
        return HIGHER_IS_BETTER[self.metric]


class RetrainSettings(_Section):
    """``mlstack retrain``: which labeled capture rows a new model learns from, and how.

    ``window`` is a duration (``90s``, ``15m``, ``24h``, ``7d``) back from now. ``prepare``
    splits the recent rows: ``holdout`` of them go to the gate only; the rest train beside
    ``reference_rows`` sampled from the original training split.
    """

    window: Annotated[str, Field(pattern=r"^(\d+(\.\d+)?[smhd])+$")]
    min_labeled_rows: Annotated[int, Field(gt=0)]
    holdout: Annotated[float, Field(gt=0, lt=1)]
    reference_rows: Annotated[int, Field(ge=0)]


class BatchingSettings(_Section):
    """Adaptive batching of concurrent ``/predict`` calls into one model call.

    ``max_latency_ms`` is the longest a request may wait in the batch queue before the
    server answers 503: too small and a busy worker sheds load it could have served.
    """

    enabled: bool
    max_batch_size: Annotated[int, Field(gt=1)]
    max_latency_ms: Annotated[int, Field(gt=0)]


class ServingSettings(_Section):
    """Where and how ``bentoml serve`` answers, and what input it refuses."""

    host: str
    port: Annotated[int, Field(gt=0, lt=65536)]
    workers: Annotated[int, Field(gt=0)]
    max_rows: Annotated[int, Field(gt=0)]
    max_body_bytes: Annotated[int, Field(gt=0)]
    reject_unknown_categories: bool
    # Native threads (OpenMP, BLAS) per worker for the model call. Workers already use
    # every core; more threads per worker made one-row predictions 15x slower here.
    model_threads: Annotated[int, Field(gt=0)]
    # Build the estimator's input matrix from the validated rows with numpy instead of
    # the ColumnTransformer on a pandas frame (serving/scoring.py), if the model's shape
    # allows and its probabilities match predict_proba's within the tolerance at load.
    compiled_inputs: bool
    compiled_tolerance: Annotated[float, Field(ge=0)]
    # One log line per request costs throughput; /metrics already counts every request.
    access_log: bool
    # Each worker asks the registry every this many seconds where the champion alias
    # points, and swaps in a new champion between batches (serving/champion.py); 0: never.
    reload_seconds: Annotated[float, Field(ge=0)]
    # Without MLSTACK_FEEDBACK_TOKEN, /feedback takes labels from loopback clients only
    # (serving/guard.py); true takes them from anywhere, unauthenticated, on purpose.
    open_feedback: bool
    batching: BatchingSettings


class CaptureSettings(_Section):
    """The capture log: every served prediction and feedback label, as Parquet.

    ``path`` is a local folder (relative to the project root) or an fsspec URL such as
    ``s3://bucket/prefix``. ``segments`` is a local folder for the write-ahead segments,
    which hold each served row before its response leaves until it is in Parquet (local
    even when ``path`` is on S3; one folder per server). ``max_pending_rows`` bounds the
    rows pending in segments; beyond it rows are dropped (and counted) rather than slowing
    requests.
    """

    enabled: bool
    path: str
    segments: str
    max_pending_rows: Annotated[int, Field(gt=0)]
    flush_rows: Annotated[int, Field(gt=0)]
    flush_seconds: Annotated[float, Field(gt=0)]


class Reassign(_Section):
    """Move a random ``share`` of a categorical column's rows to category ``value``."""

    value: str
    share: Annotated[float, Field(gt=0, le=1)]


class ScaleLabels(_Section):
    """Regression: multiply by ``factor`` the labels of the rows inside ``ranges`` (or all)."""

    factor: float
    ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)


class Scenario(_Section):
    """Traffic to replay: production rows, filtered (``where``: listed values, ``between``:
    numbers in ``[low, high]``) and sampled, with shifts injected. ``add`` and ``reassign``
    shift numbers and category shares (covariate shift); ``flip_labels`` and ``scale_labels``
    change the labels of rows in ranges (concept drift: inputs stay as they were)."""

    description: str = ""
    rows: str
    labels: str | None = None
    where: dict[str, list[Any]] = Field(default_factory=dict)
    between: dict[str, tuple[float, float]] = Field(default_factory=dict)
    sample: Annotated[int, Field(gt=0)] | None = None
    seed: int = 0
    add: dict[str, float] = Field(default_factory=dict)
    reassign: dict[str, Reassign] = Field(default_factory=dict)
    flip_labels: dict[str, tuple[float, float]] = Field(default_factory=dict)
    scale_labels: ScaleLabels | None = None


class Settings(_Section):
    """All of ``params.yaml``. ``root`` is the folder relative paths are resolved against."""

    root: Path
    data: DataSettings
    model: ModelSettings
    train: TrainSettings
    evaluate: EvaluateSettings
    promote: PromoteSettings
    retrain: RetrainSettings
    serving: ServingSettings
    capture: CaptureSettings
    drift: DriftSettings
    scenarios: dict[str, Scenario] = Field(default_factory=dict)  # traffic to replay, optional

    @model_validator(mode="after")
    def _sections_match_the_task(self) -> Settings:
        task = self.data.task
        estimator = self.train.estimator
        if ESTIMATOR_TASK.get(estimator, task) != task:
            raise ValueError(f"train.estimator: {estimator!r} has no {task} model")
        for key, metric in (
            ("promote.metric", self.promote.metric),
            ("drift.performance_metric", self.drift.performance_metric),
        ):
            if metric not in TASK_METRICS[task]:
                raise ValueError(
                    f"{key}: {metric!r} does not score a {task} model "
                    f"(use one of {', '.join(TASK_METRICS[task])})"
                )
        return self

    def path(self, relative: str | Path) -> Path:
        """A project path: absolute paths stay as they are, relative ones hang off ``root``."""
        candidate = Path(relative)
        return candidate if candidate.is_absolute() else self.root / candidate


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key")
        elif item["type"] == "missing":
            lines.append(f"{key}: missing key")
        elif item["type"] == "value_error":  # a validator's own message, which names its key
            message = str(item["msg"]).removeprefix("Value error, ")
            named = message.startswith(key) or key == "(top level)"
            lines.append(message if named else f"{key}: {message}")
        else:
            lines.append(f"{key}: {item['msg']} (got {item.get('input')!r})")
    return "; ".join(lines)


def parse_settings(raw: dict[str, Any], root: Path = PROJECT_ROOT) -> Settings:
    """Validate an already-parsed params mapping."""
    if not isinstance(raw, dict):
        raise SettingsError(
            f"{PARAMS_FILE} must be a mapping of sections, got {type(raw).__name__}"
        )
    if "root" in raw:
        raise SettingsError("root: unknown key")
    try:
        return Settings.model_validate({**raw, "root": root})
    except ValidationError as error:
        raise SettingsError(f"invalid {PARAMS_FILE}: {_describe(error)}") from None


def params_file() -> Path:
    """The params file every command, stage and the service reads: the one way to choose it."""
    chosen = os.environ.get(environment.PARAMS)
    return Path(chosen) if chosen else PROJECT_ROOT / PARAMS_FILE


def _environment_overrides(raw: dict[str, Any]) -> dict[str, Any]:
    """``MLSTACK_CAPTURE_PATH``, ``MLSTACK_CAPTURE_SEGMENTS`` and ``MLSTACK_WORKERS`` over
    the file's values."""
    overrides = [
        ("capture", "path", environment.CAPTURE_PATH),
        ("capture", "segments", environment.CAPTURE_SEGMENTS),
        ("serving", "workers", environment.WORKERS),
    ]
    for section, key, variable in overrides:
        value = os.environ.get(variable)
        if value and isinstance(raw.get(section), dict):
            raw[section] = {**raw[section], key: value}
    return raw


def load_settings(path: str | Path | None = None) -> Settings:
    """Read and validate the params file (:func:`params_file` unless ``path`` is given),
    with the environment's deployment overrides applied."""
    params = Path(path) if path is not None else params_file()
    try:
        raw = yaml.safe_load(params.read_text())
    except (FileNotFoundError, IsADirectoryError):
        raise SettingsError(f"settings file not found: {params}") from None
    except yaml.YAMLError as error:
        raise SettingsError(f"{params} is not valid YAML: {error}") from None
    if isinstance(raw, dict):
        raw = _environment_overrides(raw)
    return parse_settings(raw, root=params.resolve().parent)


def exit_on_bad_settings(error: SettingsError) -> NoReturn:
    """What every command and stage does with bad settings: one line naming the key, exit 2."""
    print(f"mlstack: {' '.join(str(error).split())}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_SETTINGS)


def load_settings_or_exit() -> Settings:
    """:func:`load_settings` for a command or stage: bad settings end the process, exit 2."""
    try:
        return load_settings()
    except SettingsError as error:
        exit_on_bad_settings(error)
