from __future__ import annotations

from pipeline.promote import decide
from pipeline.settings import PromoteSettings

GATE = PromoteSettings(metric="roc_auc", min_score=0.85, min_delta=0.005, alias="champion")


def test_first_model_is_promoted() -> None:
    decision = decide("1", 0.90, None, None, GATE)
    assert decision.decision == "promoted"
    assert "first model" in decision.reason


def test_better_model_is_promoted() -> None:
    decision = decide("2", 0.91, "1", 0.90, GATE)
    assert decision.decision == "promoted"
    assert decision.champion_version == "1" and decision.champion_score == 0.90


def test_worse_model_is_rejected() -> None:
    decision = decide("2", 0.89, "1", 0.90, GATE)
    assert decision.decision == "rejected"
    assert "does not beat champion v1" in decision.reason


def test_gain_below_min_delta_is_rejected() -> None:
    assert decide("2", 0.903, "1", 0.90, GATE).decision == "rejected"


def test_below_min_score_is_rejected_even_without_champion() -> None:
    decision = decide("1", 0.80, None, None, GATE)
    assert decision.decision == "rejected"
    assert "below min_score 0.85" in decision.reason


def test_lower_is_better_for_log_loss() -> None:
    gate = PromoteSettings(metric="log_loss", min_score=0.5, min_delta=0.01, alias="champion")
    assert decide("2", 0.30, "1", 0.35, gate).decision == "promoted"
    assert decide("2", 0.36, "1", 0.35, gate).decision == "rejected"
    assert decide("1", 0.60, None, None, gate).decision == "rejected"
