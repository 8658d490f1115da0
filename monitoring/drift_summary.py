"""The drift job's verdicts: what ``summary.json`` holds (its keys are listed in the README).

``detected`` is ``None`` wherever no verdict was possible (too few rows or labels), so
"not judged" never reads as "no drift".
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnVerdict(_Model):
    method: str
    score: float
    threshold: float
    detected: bool


class Rows(_Model):
    reference: int
    current: int
    labeled: int


class DataDrift(_Model):
    detected: bool | None = None
    share: float | None = None
    drift_share: float
    columns: dict[str, ColumnVerdict] = {}


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


class ConceptDrift(_Model):
    detected: bool | None = None
    metric: str
    reference: float | None = None
    current: float | None = None
    drop: float | None = None
    p_value: float | None = None
    alpha: float
    min_drop: float
    labeled_rows: int
    min_labeled_rows: int


class ModelInfo(_Model):
    name: str
    version: str = "unknown"


class Summary(_Model):
    """The verdicts of one run, serialised to ``summary.json``.

    The Evidently snapshots ride along privately so the command can render and store them.
    """

    status: Literal["ok", "insufficient_data"]
    rows: Rows
    data_drift: DataDrift
    prediction_drift: PredictionDrift
    label_drift: LabelDrift
    concept_drift: ConceptDrift
    model: ModelInfo
    _snapshots: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def drift_detected(self) -> bool:
        """Any drift at all: what ``--fail-on-drift`` acts on."""
        return any(
            section.detected is True
            for section in (
                self.data_drift,
                self.prediction_drift,
                self.label_drift,
                self.concept_drift,
            )
        )

    @property
    def snapshots(self) -> dict[str, Any]:
        """Evidently snapshots by name: ``report`` (drift) and ``performance`` (labels)."""
        return self._snapshots
