"""The drift job's verdicts: what ``summary.json`` holds (its keys are listed in the README).

``detected`` is ``None`` wherever no verdict was possible (too few rows or labels), so
"not judged" never reads as "no drift".
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr


class Section(StrEnum):
    """The summary's verdict sections, each named once, in the order people read them.

    The value is the section's key in ``summary.json`` (and in MLflow's
    ``<section>_detected`` metrics); :attr:`kind` is its ``kind`` label on the Prometheus
    series (``mlstack_drift_detected{kind="data"}``), which the alert rules use.
    """

    DATA_DRIFT = "data_drift"
    MULTIVARIATE_DRIFT = "multivariate"
    PREDICTION_DRIFT = "prediction_drift"
    PERFORMANCE = "performance"
    CONCEPT_DRIFT = "concept_drift"
    LABEL_DRIFT = "label_drift"
    DATA_QUALITY = "data_quality"

    @property
    def kind(self) -> str:
        return self.value.removesuffix("_drift")


class RetrainOn(StrEnum):
    """Which verdict makes the schedule retrain (``any``: any drift the run detected);
    ``mlstack drift schedule --retrain-on`` takes one, :meth:`Summary.triggers_retrain`
    is the rule. ``data`` is any shift of the inputs: the per-column data drift or the
    multivariate (domain classifier) drift."""

    concept = "concept"
    performance = "performance"
    data = "data"
    any = "any"


# The summary sections each choice but ``any`` reads (any of them detected: retrain).
RETRAIN_SECTIONS = {
    RetrainOn.concept: (Section.CONCEPT_DRIFT,),
    RetrainOn.performance: (Section.PERFORMANCE,),
    RetrainOn.data: (Section.DATA_DRIFT, Section.MULTIVARIATE_DRIFT),
}

# The report's status is ``act`` when a retrain on one of these would be triggered: the
# verdicts that say the model itself does worse (``data`` and ``any`` also fire on a
# shift the model may well handle, which is ``watch``).
ACT_ON = (RetrainOn.performance, RetrainOn.concept)

OperatorStatus = Literal["ok", "watch", "act"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnVerdict(_Model):
    """A column's drift: ``detected`` when ``score`` is at least ``threshold``. With
    ``calibrated`` the threshold was measured on the reference at the window's size
    (:mod:`monitoring.calibration`) and ``p_value`` is the chance of a score this high
    with no drift; otherwise the threshold is Evidently's or ``params.yaml``'s."""

    method: str
    score: float
    threshold: float
    detected: bool
    calibrated: bool = False
    p_value: float | None = None
    importance: float | None = None  # the column's normalised weight in ``weighted_share``
    missing_share: float | None = None  # share of the current rows where it is missing


class Rows(_Model):
    reference: int
    current: int
    labeled: int


class Sample(_Model):
    """How many rows the verdicts saw. A window of at most ``max_rows`` (``drift.sample_rows``)
    is judged whole; a larger one on a uniform sample seeded by ``seed`` (``data.seed``):
    data and prediction drift and the performance estimate on ``sample_rows`` of its
    ``window_rows``, realized performance, concept and label drift on
    ``labeled_sample_rows`` of its ``labeled_window_rows``. Row counts and missing-value
    shares are always the whole window's."""

    sample_rows: int
    window_rows: int
    labeled_sample_rows: int
    labeled_window_rows: int
    max_rows: int
    seed: int


class DataDrift(_Model):
    """``detected`` when ``weighted_share`` (drifted columns weighted by the champion's
    permutation importance) is MORE than ``drift_share`` (equal is no drift); ``share``
    is the plain share of columns. ``reference`` names the rows the columns were compared
    with: ``all`` (training and test splits) or ``test``; ``alpha`` is the chance that a
    stable window flags any calibrated column (Bonferroni over them)."""

    detected: bool | None = None
    share: float | None = None
    weighted_share: float | None = None
    weights: Literal["importance", "uniform"] = "uniform"
    drift_share: float
    reference: Literal["all", "test"] = "test"
    reference_rows: int | None = None
    alpha: float | None = None
    columns: dict[str, ColumnVerdict] = {}


class MultivariateDrift(_Model):
    """The domain classifier (:mod:`monitoring.multivariate`): ``score`` is its cross-
    validated ROC AUC telling current rows from reference rows (``rows`` a side),
    ``band`` the AUCs of reference stretches of ``band_rows`` rows against the rest of
    the reference; ``detected`` when ``score`` is above ``threshold``: ``band_mean``
    plus ``sigmas`` times ``band_std``, or ``drift.multivariate.min_auc`` when that is
    higher. ``p_value`` is the normal approximation's, over the band. ``note`` says why
    a window was not judged."""

    detected: bool | None = None
    method: str = "domain classifier"
    score: float | None = None
    threshold: float | None = None
    band_mean: float | None = None
    band_std: float | None = None
    band: list[float] = []
    p_value: float | None = None
    rows: int | None = None
    band_rows: int | None = None
    sigmas: float | None = None
    note: str | None = None


class MissingValues(_Model):
    reference: float
    current: float
    detected: bool


class DataQuality(_Model):
    """Missing-value share per feature against the reference's: a column that empties is
    a verdict (an upstream break), never a failed run."""

    detected: bool | None = None
    max_missing_increase: float
    columns: dict[str, MissingValues] = {}


class PredictionDrift(_Model):
    detected: bool | None = None
    method: str | None = None
    score: float | None = None
    threshold: float | None = None
    columns: dict[str, ColumnVerdict] = {}


class LabelDrift(_Model):
    detected: bool | None = None
    method: str | None = None
    score: float | None = None
    threshold: float | None = None


class Coverage(_Model):
    """A regressor's served intervals on the labeled rows: the share holding the true value
    against the nominal coverage; ``detected`` when it is significantly below (one-sided
    binomial test at ``alpha``)."""

    nominal: float
    realized: float | None = None
    inside: int | None = None
    labeled_rows: int
    p_value: float | None = None
    alpha: float
    detected: bool | None = None


class Performance(_Model):
    """The model's performance on the window: estimated (CBPE) from its probabilities as
    soon as rows arrive, realized once labels join, both against ``lower_threshold``.

    ``detected`` is the realized verdict once there are enough labels, the estimated one
    before. ``lower_threshold`` is for a window of the current rows' size,
    ``labeled_lower_threshold`` for the labeled rows' (the same when every label joined).
    A regressor's loss (``rmse``, ``mae``; ``higher_is_better`` false) is estimated by
    direct loss estimation and judged against ``upper_threshold`` instead, and its
    intervals' ``coverage`` is judged too.
    """

    detected: bool | None = None
    metric: str
    higher_is_better: bool = True
    reference: float | None = None
    estimated: float | None = None
    realized: float | None = None
    lower_threshold: float | None = None
    labeled_lower_threshold: float | None = None
    upper_threshold: float | None = None
    labeled_upper_threshold: float | None = None
    coverage: Coverage | None = None
    drop_detected: bool | None = None
    estimated_drop_detected: bool | None = None
    p_value: float | None = None
    alpha: float
    sigmas: float
    min_drop: float
    labeled_rows: int
    min_labeled_rows: int


class ConceptDrift(_Model):
    """Realized performance significantly and materially below the CBPE estimate on the
    same labeled rows: what the inputs alone promise the model, the labels deny it.

    ``reference`` and ``current`` are the realized metric on the reference set and the
    labeled rows (``drop`` their difference); ``estimated`` the estimate on those rows,
    ``gap`` estimated minus current, ``gap_threshold`` the band it must exceed and
    ``p_value`` the paired bootstrap's for "current is below the estimate".
    """

    detected: bool | None = None
    metric: str
    reference: float | None = None
    current: float | None = None
    estimated: float | None = None
    drop: float | None = None
    gap: float | None = None
    gap_threshold: float | None = None
    p_value: float | None = None
    alpha: float
    min_drop: float
    labeled_rows: int
    min_labeled_rows: int


class ModelInfo(_Model):
    name: str
    version: str = "unknown"
    run_id: str | None = None  # the training run, when the registry names it


class Summary(_Model):
    """The verdicts of one run, serialised to ``summary.json``.

    The Evidently snapshots ride along privately so the command can render and store them.
    """

    status: Literal["ok", "insufficient_data"]
    rows: Rows
    sample: Sample
    data_drift: DataDrift
    multivariate: MultivariateDrift = Field(default_factory=MultivariateDrift)
    prediction_drift: PredictionDrift
    label_drift: LabelDrift
    performance: Performance
    concept_drift: ConceptDrift
    data_quality: DataQuality
    model: ModelInfo
    _snapshots: dict[str, Any] = PrivateAttr(default_factory=dict)

    def verdicts(self) -> dict[Section, bool | None]:
        """Each section's ``detected``, ``None`` where it was not judged."""
        return {section: getattr(self, section.value).detected for section in Section}

    @property
    def drift_detected(self) -> bool:
        """Any drift at all: what ``--fail-on-drift`` acts on."""
        return any(detected is True for detected in self.verdicts().values())

    def triggers_retrain(self, on: RetrainOn) -> bool:
        """Whether ``drift schedule --retrain-on <on>`` retrains after this run."""
        if on is RetrainOn.any:
            return self.drift_detected
        verdicts = self.verdicts()
        return any(verdicts[section] is True for section in RETRAIN_SECTIONS[on])

    @property
    def operator_status(self) -> OperatorStatus | None:
        """The report's one status: ``act`` when a retrain on performance or concept drift
        would be triggered (:data:`ACT_ON`), ``watch`` when any other verdict is found
        (data or prediction drift, label drift, missing values), ``ok`` otherwise; ``None``
        when the window was too small to judge (not judged never reads as ok)."""
        if self.status != "ok":
            return None
        if any(self.triggers_retrain(on) for on in ACT_ON):
            return "act"
        return "watch" if self.drift_detected else "ok"

    @property
    def snapshots(self) -> dict[str, Any]:
        """Evidently snapshots by name: ``report`` (drift) and ``performance`` (labels)."""
        return self._snapshots
