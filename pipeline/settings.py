"""Typed settings loaded once from ``params.yaml``.

Every knob of the project lives in ``params.yaml``, one section per concern. This
module turns that file into validated objects, so that a wrong key or a wrong type
fails at start-up with a message naming the key, instead of deep inside a stage.
Secrets and endpoints (tracking URI, Pushgateway URL, S3 credentials) never come from
here: they come from the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PROJECT_ROOT = Path(os.environ.get("MLSTACK_ROOT", Path(__file__).resolve().parents[1]))
PARAMS_FILE = "params.yaml"


class SettingsError(ValueError):
    """``params.yaml`` is missing, unreadable or does not match the expected shape."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_label(value: Any) -> str:
    # Imported lazily would be a cycle: schema imports settings. Keep the rule here once.
    from pipeline.schema import normalize_label

    return normalize_label(value)


class Features(_Section):
    numerical: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)

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
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.25
    stratify: bool = True


class DataSettings(_Section):
    path: str
    target: str
    id: str | None = None
    timestamp: str | None = None
    classes: list[str] | None = None
    drop: list[str] = Field(default_factory=list)
    features: Features
    ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)
    split: Split = Split()
    seed: int = 42

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_as_labels(cls, value: Any) -> Any:
        return None if value is None else [_as_label(v) for v in value]

    @model_validator(mode="after")
    def _ranges_are_numerical(self) -> DataSettings:
        unknown = set(self.ranges) - set(self.features.numerical)
        if unknown:
            raise ValueError(f"ranges given for non-numerical columns: {sorted(unknown)}")
        return self


class ModelSettings(_Section):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")]


class HistGradientBoosting(_Section):
    max_iter: Annotated[int, Field(gt=0)] = 200
    learning_rate: Annotated[float, Field(gt=0)] = 0.1
    max_leaf_nodes: Annotated[int, Field(gt=1)] | None = 31
    max_depth: Annotated[int, Field(gt=0)] | None = None
    min_samples_leaf: Annotated[int, Field(gt=0)] = 20
    l2_regularization: Annotated[float, Field(ge=0)] = 0.0
    early_stopping: bool | Literal["auto"] = "auto"


class LogisticRegression(_Section):
    C: Annotated[float, Field(gt=0)] = 1.0
    max_iter: Annotated[int, Field(gt=0)] = 1000


class RandomForest(_Section):
    n_estimators: Annotated[int, Field(gt=0)] = 200
    max_depth: Annotated[int, Field(gt=0)] | None = None
    min_samples_leaf: Annotated[int, Field(gt=0)] = 1
    n_jobs: int | None = None


Estimator = Literal["hist_gradient_boosting", "logistic_regression", "random_forest"]


class TrainSettings(_Section):
    estimator: Estimator = "hist_gradient_boosting"
    hist_gradient_boosting: HistGradientBoosting = HistGradientBoosting()
    logistic_regression: LogisticRegression = LogisticRegression()
    random_forest: RandomForest = RandomForest()

    def hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters of the chosen estimator only."""
        section: BaseModel = getattr(self, self.estimator)
        return section.model_dump()


class PromoteSettings(_Section):
    metric: Literal["roc_auc", "accuracy", "f1", "log_loss"] = "roc_auc"
    min_score: float = 0.0
    min_delta: Annotated[float, Field(ge=0)] = 0.0
    alias: str = "champion"


class BatchingSettings(_Section):
    """Adaptive batching of concurrent ``/predict`` calls into one model call.

    ``max_latency_ms`` is the longest a request may wait in the batch queue before the
    server answers 503: too small and a busy worker sheds load it could have served.
    """

    enabled: bool = True
    max_batch_size: Annotated[int, Field(gt=1)] = 256
    max_latency_ms: Annotated[int, Field(gt=0)] = 5000


class ServingSettings(_Section):
    """Where and how ``bentoml serve`` answers, and what input it refuses."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65536)] = 3000
    workers: Annotated[int, Field(gt=0)] = 1
    max_rows: Annotated[int, Field(gt=0)] = 1000
    max_body_bytes: Annotated[int, Field(gt=0)] = 1_048_576
    reject_unknown_categories: bool = True
    # Native threads (OpenMP, BLAS) per worker for the model call. Workers already use
    # every core; more threads per worker made one-row predictions 15x slower here.
    model_threads: Annotated[int, Field(gt=0)] = 1
    # One log line per request costs throughput; /metrics already counts every request.
    access_log: bool = False
    batching: BatchingSettings = BatchingSettings()


class CaptureSettings(_Section):
    """The capture log: every served prediction and feedback label, as Parquet.

    ``path`` is a local folder (relative to the project root) or an fsspec URL such as
    ``s3://bucket/prefix``. ``queue_rows`` bounds the memory the log may hold between
    flushes; beyond it rows are dropped (and counted) rather than slowing requests.
    """

    enabled: bool = True
    path: str = "data/capture"
    queue_rows: Annotated[int, Field(gt=0)] = 100_000
    flush_rows: Annotated[int, Field(gt=0)] = 5_000
    flush_seconds: Annotated[float, Field(gt=0)] = 5.0


class ColumnDrift(_Section):
    """Evidently's drift method and threshold for one column (``None``: Evidently's default)."""

    method: str | None = None
    threshold: float | None = None


class DriftSettings(_Section):
    """The drift job: where it writes, and when it calls drift.

    Methods and thresholds left at ``None`` are Evidently's defaults, which pick a
    distance (Wasserstein, Jensen-Shannon) above 1,000 rows and a test (K-S, chi-square)
    below: a p-value on 70,000 rows flags differences nobody cares about. Concept drift
    needs both a significant drop (bootstrap at ``alpha``) and a large enough one
    (``min_performance_drop``), so neither noise nor a tiny real change raises an alarm.
    Distances have no sample-size correction, hence ``min_rows``: on fewer rows their
    noise alone approaches the thresholds.
    """

    reports: str = "reports/drift"
    workspace: str = "monitoring/workspace"
    project: str = "mlstack"
    state: str = "reports/drift/state.json"
    min_rows: Annotated[int, Field(gt=0)] = 1000
    min_labeled_rows: Annotated[int, Field(gt=0)] = 200
    drift_share: Annotated[float, Field(gt=0, le=1)] = 0.5
    method: str | None = None
    threshold: float | None = None
    columns: dict[str, ColumnDrift] = Field(default_factory=dict)
    prediction_method: str | None = None
    prediction_threshold: float | None = None
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.01
    min_performance_drop: Annotated[float, Field(ge=0)] = 0.03
    performance_metric: Literal["roc_auc", "accuracy", "f1"] = "roc_auc"
    bootstrap: Annotated[int, Field(ge=100)] = 300

    @model_validator(mode="after")
    def _bootstrap_can_reach_alpha(self) -> DriftSettings:
        floor = 1 / (self.bootstrap + 1)
        if floor >= self.alpha:
            raise ValueError(
                f"bootstrap: {self.bootstrap} resamples cannot give a p-value below alpha "
                f"{self.alpha}; use at least {int(1 / self.alpha)}"
            )
        return self


class Reassign(_Section):
    """Move a random ``share`` of a categorical column's rows to category ``value``."""

    value: str
    share: Annotated[float, Field(gt=0, le=1)]


class Scenario(_Section):
    """Traffic to replay: production rows, filtered and sampled, with shifts injected.

    ``add`` shifts numerical columns (covariate shift), ``reassign`` changes a category's
    share (covariate shift), ``flip_labels`` gives another class to the rows whose
    numerical columns fall in the given ranges (concept drift: inputs stay as they were).
    """

    description: str = ""
    rows: str
    labels: str | None = None
    where: dict[str, list[Any]] = Field(default_factory=dict)
    sample: Annotated[int, Field(gt=0)] | None = None
    seed: int = 0
    add: dict[str, float] = Field(default_factory=dict)
    reassign: dict[str, Reassign] = Field(default_factory=dict)
    flip_labels: dict[str, tuple[float, float]] = Field(default_factory=dict)


class Settings(_Section):
    """All of ``params.yaml``. ``root`` is the folder relative paths are resolved against."""

    root: Path = PROJECT_ROOT
    data: DataSettings
    model: ModelSettings
    train: TrainSettings = TrainSettings()
    promote: PromoteSettings = PromoteSettings()
    serving: ServingSettings = ServingSettings()
    capture: CaptureSettings = CaptureSettings()
    drift: DriftSettings = DriftSettings()
    scenarios: dict[str, Scenario] = Field(default_factory=dict)

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


def load_settings(path: str | Path | None = None) -> Settings:
    """Read and validate ``params.yaml`` (by default the project's own)."""
    params = Path(path) if path is not None else PROJECT_ROOT / PARAMS_FILE
    try:
        raw = yaml.safe_load(params.read_text())
    except FileNotFoundError:
        raise SettingsError(f"settings file not found: {params}") from None
    except yaml.YAMLError as error:
        raise SettingsError(f"{params} is not valid YAML: {error}") from None
    return parse_settings(raw, root=params.resolve().parent)
