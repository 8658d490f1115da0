"""The Prometheus series of one run, and its MLflow metrics: names, labels, values, and
what is left out."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitoring.drift_job.exports import mlflow_metrics
from monitoring.drift_metrics import registry_for, write_textfile
from monitoring.drift_summary import (
    ColumnVerdict,
    ConceptDrift,
    DataDrift,
    DataQuality,
    LabelDrift,
    MissingValues,
    ModelInfo,
    MultivariateDrift,
    Performance,
    PredictionDrift,
    Rows,
    Sample,
    Summary,
)

MODEL = {"model_name": "employment-classifier", "model_version": "7"}


def _verdict(
    score: float, detected: bool, importance: float | None = None, missing: float | None = None
) -> ColumnVerdict:
    return ColumnVerdict(
        method="Jensen-Shannon distance",
        score=score,
        threshold=0.1,
        detected=detected,
        importance=importance,
        missing_share=missing,
    )


def _performance(**judged: object) -> Performance:
    return Performance.model_validate(
        {
            "metric": "roc_auc",
            "alpha": 0.01,
            "sigmas": 3.0,
            "min_drop": 0.0,
            "labeled_rows": 300,
            "min_labeled_rows": 200,
            **judged,
        }
    )


def _sample(rows: int, labeled: int) -> Sample:
    """A window smaller than ``drift.sample_rows``: judged whole."""
    return Sample(
        sample_rows=rows,
        window_rows=rows,
        labeled_sample_rows=labeled,
        labeled_window_rows=labeled,
        max_rows=100_000,
        seed=42,
    )


def judged() -> Summary:
    return Summary(
        status="ok",
        rows=Rows(reference=1000, current=500, labeled=300),
        sample=_sample(500, 300),
        data_drift=DataDrift(
            detected=True,
            share=0.5,
            weighted_share=0.8,
            weights="importance",
            drift_share=0.1,
            columns={
                "AGEP": _verdict(0.4, True, importance=0.8, missing=0.0),
                "SEX": _verdict(0.01, False, importance=0.2, missing=1.0),
            },
        ),
        multivariate=MultivariateDrift(
            detected=True,
            score=0.71,
            threshold=0.56,
            band_mean=0.5,
            band_std=0.02,
            band=[0.48, 0.5, 0.52],
            p_value=1e-12,
            rows=500,
            band_rows=476,
            sigmas=3.0,
        ),
        prediction_drift=PredictionDrift(
            detected=False,
            method="Wasserstein distance (normed)",
            score=0.02,
            threshold=0.1,
            columns={"proba_1": _verdict(0.02, False)},
        ),
        label_drift=LabelDrift(detected=False, method="Jensen-Shannon distance", score=0.01),
        performance=_performance(
            detected=True,
            reference=0.9,
            estimated=0.88,
            realized=0.7,
            lower_threshold=0.87,
            drop_detected=True,
            estimated_drop_detected=False,
        ),
        concept_drift=ConceptDrift(
            detected=True,
            metric="roc_auc",
            reference=0.9,
            current=0.7,
            drop=0.2,
            p_value=0.003,
            alpha=0.01,
            min_drop=0.03,
            labeled_rows=300,
            min_labeled_rows=200,
        ),
        data_quality=DataQuality(
            detected=True,
            max_missing_increase=0.05,
            columns={
                "AGEP": MissingValues(reference=0.0, current=0.0, detected=False),
                "SEX": MissingValues(reference=0.0, current=1.0, detected=True),
            },
        ),
        model=ModelInfo(name="employment-classifier", version="7"),
    )


def insufficient() -> Summary:
    return Summary(
        status="insufficient_data",
        rows=Rows(reference=1000, current=20, labeled=0),
        sample=_sample(20, 0),
        data_drift=DataDrift(drift_share=0.1),
        prediction_drift=PredictionDrift(),
        label_drift=LabelDrift(),
        performance=_performance(labeled_rows=0),
        concept_drift=ConceptDrift(
            metric="roc_auc", alpha=0.01, min_drop=0.03, labeled_rows=0, min_labeled_rows=200
        ),
        data_quality=DataQuality(max_missing_increase=0.05),
        model=ModelInfo(name="employment-classifier", version="7"),
    )


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found[(name, frozenset({**MODEL, **labels}.items()))]


def test_textfile_holds_every_series(tmp_path: Path) -> None:
    path = tmp_path / "textfile" / "mlstack_drift.prom"
    write_textfile(judged(), path, finished=1_700_000_000.0, skipped_files=2)
    found = samples(path.read_text())
    assert value(found, "mlstack_drift_detected", kind="data") == 1
    assert value(found, "mlstack_drift_detected", kind="prediction") == 0
    assert value(found, "mlstack_drift_detected", kind="label") == 0
    assert value(found, "mlstack_drift_detected", kind="concept") == 1
    assert value(found, "mlstack_drift_detected", kind="performance") == 1
    assert value(found, "mlstack_drift_detected", kind="data_quality") == 1
    assert value(found, "mlstack_drift_detected", kind="multivariate") == 1
    assert value(found, "mlstack_drift_multivariate_auc", kind="current") == 0.71
    assert value(found, "mlstack_drift_multivariate_auc", kind="threshold") == 0.56
    assert value(found, "mlstack_drift_multivariate_auc", kind="reference") == 0.5
    assert value(found, "mlstack_drift_share") == 0.5
    assert value(found, "mlstack_drift_weighted_share") == 0.8
    assert value(found, "mlstack_drift_column_importance", column="AGEP") == 0.8
    assert value(found, "mlstack_drift_column_missing_share", column="SEX") == 1.0
    assert value(found, "mlstack_drift_column_score", column="AGEP") == 0.4
    assert value(found, "mlstack_drift_column_detected", column="AGEP") == 1
    assert value(found, "mlstack_drift_column_detected", column="SEX") == 0
    assert value(found, "mlstack_drift_column_score", column="proba_1") == 0.02
    assert value(found, "mlstack_performance", metric="roc_auc", kind="reference") == 0.9
    assert value(found, "mlstack_performance", metric="roc_auc", kind="estimated") == 0.88
    assert value(found, "mlstack_performance", metric="roc_auc", kind="realized") == 0.7
    assert value(found, "mlstack_performance_lower_threshold", metric="roc_auc") == 0.87
    assert value(found, "mlstack_drift_rows", kind="labeled") == 300
    assert value(found, "mlstack_drift_last_success_timestamp_seconds") == 1_700_000_000.0
    assert value(found, "mlstack_drift_skipped_files") == 2
    assert not list(path.parent.glob("*.tmp*")), "the textfile is written then renamed"


def test_no_verdict_means_no_detected_series(tmp_path: Path) -> None:
    """Too few rows: 'no verdict' must not read as 'no drift' on a dashboard."""
    path = tmp_path / "drift.prom"
    write_textfile(insufficient(), path)
    names = {name for name, _ in samples(path.read_text())}
    assert "mlstack_drift_detected" not in names
    assert "mlstack_drift_share" not in names
    assert "mlstack_performance" not in names
    assert "mlstack_drift_weighted_share" not in names
    assert "mlstack_drift_multivariate_auc" not in names
    assert {"mlstack_drift_rows", "mlstack_drift_last_success_timestamp_seconds"} <= names
    assert value(samples(path.read_text()), "mlstack_drift_skipped_files") == 0


def test_each_run_gets_a_fresh_registry() -> None:
    first, second = registry_for(judged()), registry_for(insufficient())
    assert first is not second
    assert second.get_sample_value("mlstack_drift_share", MODEL) is None
    assert first.get_sample_value("mlstack_drift_share", MODEL) == pytest.approx(0.5)


def test_an_estimate_without_labels_exports_no_realized_performance() -> None:
    summary = judged().model_copy(
        update={
            "performance": _performance(
                detected=False,
                reference=0.9,
                estimated=0.89,
                lower_threshold=0.87,
                estimated_drop_detected=False,
                labeled_rows=0,
            )
        }
    )
    registry = registry_for(summary)
    labels = {**MODEL, "metric": "roc_auc"}
    assert registry.get_sample_value("mlstack_performance", {**labels, "kind": "estimated"}) == 0.89
    assert registry.get_sample_value("mlstack_performance", {**labels, "kind": "realized"}) is None
    performance = {**MODEL, "kind": "performance"}
    assert registry.get_sample_value("mlstack_drift_detected", performance) == 0


def test_mlflow_metrics_carry_every_verdict_and_the_domain_classifier() -> None:
    metrics = mlflow_metrics(judged())
    assert metrics["multivariate_detected"] == 1.0
    assert metrics["multivariate_score"] == 0.71
    assert metrics["multivariate_threshold"] == 0.56
    assert metrics["multivariate_band_mean"] == 0.5
    assert metrics["multivariate_band_std"] == 0.02
    assert metrics["multivariate_p_value"] == 1e-12
    assert metrics["data_drift_detected"] == 1.0
    assert metrics["drift_score_AGEP"] == 0.4


def test_mlflow_metrics_leave_out_an_unjudged_domain_classifier() -> None:
    """Too few rows: no ``multivariate_*`` metric rather than a 0 that reads as 'no drift'."""
    metrics = mlflow_metrics(insufficient())
    assert not [name for name in metrics if name.startswith("multivariate")]
    assert metrics["rows_current"] == 20
