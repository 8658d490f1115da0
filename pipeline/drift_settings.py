"""The drift job's settings (``drift:`` in ``params.yaml``), beside the rest in
:mod:`pipeline.settings`, which re-exports them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from pipeline.section import Section as _Section


class ColumnDrift(_Section):
    """Evidently's drift method and threshold for one column (``None``: Evidently's default)."""

    method: str | None = None
    threshold: float | None = None


class Calibration(_Section):
    """Column thresholds calibrated on the reference (:mod:`monitoring.calibration`).

    For every column judged by the default distance (normed Wasserstein for numbers,
    Jensen-Shannon for categories) with no threshold of its own, the distance between
    ``chunks`` reference chunks of the window's size and the rest of the reference gives
    the distance's null distribution; the column's threshold is its ``1 - alpha / k``
    quantile (``k`` the columns judged: Bonferroni, Holm's first step), so a stable
    window flags any column with probability at most ``drift.alpha``. A threshold is never
    below ``min_distance``: on a large window a change too small to matter is still far
    beyond the noise."""

    enabled: bool
    chunks: Annotated[int, Field(ge=20, le=2000)]
    min_distance: Annotated[float, Field(ge=0, le=1)]


class Multivariate(_Section):
    """The domain classifier (:mod:`monitoring.multivariate`): can a model tell current
    rows from reference rows? Its cross-validated AUC is judged against the band of AUCs
    of reference chunks of the window's size against the rest of the reference."""

    enabled: bool
    max_rows: Annotated[int, Field(ge=200)]  # rows a side the classifier sees (a seeded sample)
    folds: Annotated[int, Field(ge=2, le=10)]
    chunks: Annotated[int, Field(ge=5, le=200)]  # reference-against-reference AUCs for the band


class DriftSettings(_Section):
    """The drift job: where it writes, and when it calls drift.

    Methods and thresholds left at ``None`` are Evidently's defaults, which pick a
    distance (Wasserstein, Jensen-Shannon) above 1,000 rows and a test (K-S, chi-square)
    below: a p-value on 70,000 rows flags differences nobody cares about. Distances have
    no sample-size correction, hence ``min_rows``: on fewer rows their noise alone
    approaches the thresholds. A performance drop (and concept drift) needs both a
    significant bootstrap test at ``alpha`` and a value beyond ``performance_sigmas``
    standard deviations of the metric over reference chunks of the window's size, so the
    effect size adapts to the model, the data and the window; ``min_performance_drop``
    adds a fixed floor on top (0: none). A window larger than ``sample_rows`` is judged on a
    seeded uniform sample of that many rows. The report plots the last ``history_runs``.
    """

    reports: str
    workspace: str
    project: str
    state: str
    schedule: str  # cron (UTC): when the orchestrators' files run the drift job
    min_rows: Annotated[int, Field(gt=0)]
    min_labeled_rows: Annotated[int, Field(gt=0)]
    drift_share: Annotated[float, Field(gt=0, le=1)]
    method: str | None
    threshold: float | None
    columns: dict[str, ColumnDrift]
    prediction_method: str | None
    prediction_threshold: float | None
    alpha: Annotated[float, Field(gt=0, lt=1)]
    min_performance_drop: Annotated[float, Field(ge=0)]
    performance_sigmas: Annotated[float, Field(gt=0)]
    slices: Annotated[int, Field(ge=2)]
    performance_metric: Literal["roc_auc", "accuracy", "f1", "rmse", "mae"]
    max_missing_increase: Annotated[float, Field(ge=0, lt=1)]
    bootstrap: Annotated[int, Field(ge=100)]
    sample_rows: Annotated[int, Field(gt=0)]
    history_runs: Annotated[int, Field(ge=1, le=1000)]
    reference: Literal["all", "test"]  # the rows input distributions are compared against
    calibration: Calibration
    multivariate: Multivariate

    @model_validator(mode="after")
    def _sample_can_be_judged(self) -> DriftSettings:
        needs = {"min_rows": self.min_rows, "min_labeled_rows": self.min_labeled_rows}
        for key, needed in needs.items():
            if self.sample_rows < needed:
                raise ValueError(
                    f"drift.sample_rows {self.sample_rows} is below drift.{key} {needed}: a window "
                    "large enough to judge would be judged on fewer rows than that"
                )
        return self

    @model_validator(mode="after")
    def _bootstrap_can_reach_alpha(self) -> DriftSettings:
        floor = 1 / (self.bootstrap + 1)
        if floor >= self.alpha:
            raise ValueError(
                f"bootstrap: {self.bootstrap} resamples cannot give a p-value below alpha "
                f"{self.alpha}; use at least {int(1 / self.alpha)}"
            )
        return self
