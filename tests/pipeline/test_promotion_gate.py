from __future__ import annotations

from pipeline.promote import RecentScores, decide
from pipeline.settings import PromoteSettings

GATE = PromoteSettings(
    metric="roc_auc",
    threshold=0.85,
    min_delta=0.005,
    min_recent_rows=100,
    max_test_drop=0.05,
    alias="champion",
)
LOG_LOSS = GATE.model_copy(update={"metric": "log_loss", "threshold": 0.5, "min_delta": 0.01})
ROWS = 500  # recent rows held out, above min_recent_rows


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


def test_below_the_threshold_is_rejected_even_without_champion() -> None:
    decision = decide("1", 0.80, None, None, GATE)
    assert decision.decision == "rejected"
    assert "below threshold 0.85" in decision.reason


def test_lower_is_better_for_log_loss() -> None:
    gate = LOG_LOSS
    assert decide("2", 0.30, "1", 0.35, gate).decision == "promoted"
    assert decide("2", 0.36, "1", 0.35, gate).decision == "rejected"
    assert decide("1", 0.60, None, None, gate).decision == "rejected"


# With recent rows (after `mlstack retrain`): the threshold on the test split, min_delta on recent.


def test_better_on_recent_rows_is_promoted_though_worse_on_the_test_split() -> None:
    decision = decide(
        "2", 0.86, "1", 0.90, GATE, RecentScores(candidate=0.80, champion=0.70, rows=ROWS)
    )
    assert decision.decision == "promoted"
    assert decision.judged_on == "recent"
    assert "on recent data by +0.1000" in decision.reason
    assert (decision.candidate_recent_score, decision.champion_recent_score) == (0.80, 0.70)
    assert (decision.candidate_score, decision.champion_score) == (0.86, 0.90)


def test_not_better_on_recent_rows_by_min_delta_is_rejected() -> None:
    decision = decide(
        "2", 0.95, "1", 0.90, GATE, RecentScores(candidate=0.703, champion=0.70, rows=ROWS)
    )
    assert decision.decision == "rejected"
    assert (
        "does not beat champion v1 on recent data: +0.0030 is not more than min_delta 0.005"
        in decision.reason
    )


def test_better_on_recent_rows_but_below_the_threshold_on_the_test_split_is_rejected() -> None:
    decision = decide(
        "2", 0.84, "1", 0.90, GATE, RecentScores(candidate=0.95, champion=0.70, rows=ROWS)
    )
    assert decision.decision == "rejected"
    assert "below threshold 0.85" in decision.reason
    assert decision.judged_on == "recent"


def test_recent_rows_without_a_champion_promote_the_first_model() -> None:
    decision = decide(
        "1", 0.90, None, None, GATE, RecentScores(candidate=0.80, champion=None, rows=ROWS)
    )
    assert decision.decision == "promoted" and "first model" in decision.reason


def test_recent_rows_the_champion_has_no_score_on_are_a_rejection() -> None:
    decision = decide(
        "2", 0.90, "1", 0.90, GATE, RecentScores(candidate=0.80, champion=None, rows=ROWS)
    )
    assert decision.decision == "rejected"
    assert "no score on the recent rows" in decision.reason


def test_candidate_already_champion_is_promoted_with_recent_rows() -> None:
    decision = decide(
        "1", 0.90, "1", 0.90, GATE, RecentScores(candidate=0.80, champion=0.80, rows=ROWS)
    )
    assert decision.decision == "promoted" and "already is the champion" in decision.reason


def test_lower_is_better_on_recent_rows_for_log_loss() -> None:
    gate = LOG_LOSS
    assert decide("2", 0.32, "1", 0.3, gate, RecentScores(0.30, 0.35, ROWS)).decision == "promoted"
    assert decide("2", 0.3, "1", 0.4, gate, RecentScores(0.36, 0.35, ROWS)).decision == "rejected"


def test_without_recent_rows_the_test_split_decides() -> None:
    decision = decide("2", 0.91, "1", 0.90, GATE)
    assert decision.judged_on == "test" and decision.candidate_recent_score is None
    assert "on the test split" in decision.reason


# Defects found by the hostile probe (issue 26): ties, rounding, too few rows, the test split.


def test_a_tie_is_not_a_win() -> None:
    gate = GATE.model_copy(update={"min_delta": 0.0})
    assert decide("2", 0.90, "1", 0.90, gate).decision == "rejected"
    tie = RecentScores(candidate=0.80, champion=0.80, rows=ROWS)
    assert decide("2", 0.90, "1", 0.90, gate, tie).decision == "rejected"
    assert decide("2", 0.9001, "1", 0.90, gate).decision == "promoted"


def test_a_score_just_below_the_threshold_is_not_printed_as_equal() -> None:
    decision = decide("1", 0.84998, None, None, GATE)
    assert decision.decision == "rejected"
    assert "0.84998 is below threshold 0.85" in decision.reason
    assert "0.8500 " not in decision.reason


def test_too_few_recent_rows_promote_nothing() -> None:
    few = RecentScores(candidate=0.95, champion=0.70, rows=GATE.min_recent_rows - 1)
    decision = decide("2", 0.90, "1", 0.90, GATE, few)
    assert decision.decision == "rejected"
    assert f"only {few.rows} labeled recent rows" in decision.reason
    assert f"min_recent_rows {GATE.min_recent_rows}" in decision.reason


def test_winning_on_recent_rows_while_losing_the_test_split_is_rejected() -> None:
    # the probe: a model retrained on random labels, a hair better on the recent rows, lost
    # 0.02 AUC on the test split and was promoted; with a tolerance of 0.01 it is not
    gate = GATE.model_copy(update={"min_delta": 0.0, "max_test_drop": 0.01})
    lucky = RecentScores(candidate=0.5012, champion=0.5004, rows=ROWS)
    decision = decide("3", 0.8854, "2", 0.9057, gate, lucky)
    assert decision.decision == "rejected"
    assert "on the test split, more than max_test_drop 0.01" in decision.reason
    within = RecentScores(candidate=0.80, champion=0.70, rows=ROWS)
    assert decide("3", 0.90, "2", 0.9057, gate, within).decision == "promoted"


# A regressor's gate: rmse is lower-is-better, its threshold an upper bar.
RMSE = GATE.model_copy(
    update={"metric": "rmse", "threshold": 1500.0, "min_delta": 10.0, "max_test_drop": 50.0}
)


def test_an_rmse_above_the_threshold_is_refused_saying_above() -> None:
    decision = decide("1", 1500.25, None, None, RMSE)
    assert decision.decision == "rejected"
    assert decision.reason == "candidate rmse 1500.2500 is above threshold 1500.0"
    assert decide("1", 1500.0, None, None, RMSE).decision == "promoted", "at the bar is in"
    assert decide("1", 900.0, None, None, RMSE.model_copy(update={"threshold": None})).decision == (
        "promoted"
    )


def test_a_lower_rmse_by_more_than_min_delta_wins_a_tie_does_not() -> None:
    better = decide("2", 1000.0, "1", 1020.0, RMSE)
    assert better.decision == "promoted"
    assert "by +20.0000 (more than min_delta 10.0)" in better.reason
    assert decide("2", 1015.0, "1", 1020.0, RMSE).decision == "rejected"  # +5 <= min_delta
    tie = decide("2", 1020.0, "1", 1020.0, RMSE.model_copy(update={"min_delta": 0.0}))
    assert tie.decision == "rejected"
    assert "+0.0000 is not more than min_delta 0.0" in tie.reason
    worse = decide("2", 1100.0, "1", 1020.0, RMSE)
    assert worse.decision == "rejected" and "-80.0000" in worse.reason


def test_after_a_retrain_rmse_is_judged_on_recent_rows_and_the_test_drop_bounded() -> None:
    recent = RecentScores(candidate=900.0, champion=1300.0, rows=ROWS)
    decision = decide("2", 1040.0, "1", 1000.0, RMSE, recent)
    assert decision.decision == "promoted" and decision.judged_on == "recent"
    assert "on recent data by +400.0000" in decision.reason
    lost = decide("2", 1060.0, "1", 1000.0, RMSE, recent)
    assert lost.decision == "rejected"
    assert "loses 60.0000 rmse to champion v1 on the test split" in lost.reason
