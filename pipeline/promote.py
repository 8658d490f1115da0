"""Stage 4, promote: the gate between a registered candidate and the ``champion`` alias.

The candidate becomes champion only if it reaches ``promote.threshold`` on the original
test split and beats the current champion by more than ``promote.min_delta`` (a tie is
not a win). After a retrain (``mlstack retrain``), "beats" is judged on the recent labeled
production rows ``prepare`` held out (``data/prepared/recent_holdout.parquet``, never
trained on): that is where a model fitted to yesterday's world loses. There must be at
least ``promote.min_recent_rows`` of them, and the candidate must not lose more than
``promote.max_test_drop`` to the champion on the test split. Without recent rows it is
judged on the test split, as the first ``dvc repro`` does. Otherwise the alias stays
where it was.
Either way the decision, both models' scores on both sets and the data used are written
to ``reports/promotion.json``, and all but the data to tags on the candidate version in
the registry; a move of the alias is also recorded in the champion's history
(``pipeline/registry.py``), with what triggered the retrain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import pandas as pd

from pipeline.io import read_json, read_table, write_json
from pipeline.lineage import recent_lineage
from pipeline.metrics import model_score
from pipeline.paths import (
    PROMOTION_REPORT,
    RECENT_FILE,
    RECENT_HOLDOUT_FILE,
    TEST_FILE,
    TRAIN_REPORT,
)
from pipeline.registry import champion_version, move_champion
from pipeline.settings import PromoteSettings, load_settings_or_exit
from pipeline.tracking import client, load_model, tracking_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass(frozen=True)
class Decision:
    decision: str  # "promoted" or "rejected"
    reason: str
    metric: str
    candidate_version: str
    candidate_score: float
    champion_version: str | None
    champion_score: float | None  # the scores above are on the original test split
    judged_on: str  # "recent" (the held-out production rows) or "test" (the test split)
    candidate_recent_score: float | None
    champion_recent_score: float | None


@dataclass(frozen=True)
class RecentScores:
    """Candidate and champion on the recent rows held out for the gate, and how many."""

    candidate: float
    champion: float | None
    rows: int


def exact(value: float, bound: float) -> str:
    """``value`` printed with as many digits as it takes not to read as ``bound``.

    0.84998 against a bound of 0.85 prints as 0.84998, never as a rounded 0.8500 that
    reads as equal to the bound it missed.
    """
    for digits in range(4, 17):
        text = f"{value:.{digits}f}"
        if float(text) != bound or value == bound:
            return text
    return repr(value)


def _signed(gain: float, bound: float) -> str:
    return ("+" if gain >= 0 else "") + exact(gain, bound)


def _gain(new: float, old: float, higher: bool) -> float:
    return new - old if higher else old - new


def _recent_refusal(
    candidate_score: float,
    champion_version: str,
    champion_score: float,
    gate: PromoteSettings,
    recent: RecentScores,
) -> str | None:
    """Why the recent rows cannot promote the candidate, or None when they may judge it."""
    if recent.champion is None:
        return "the champion has no score on the recent rows"
    if recent.rows < gate.min_recent_rows:
        return (
            f"only {recent.rows} labeled recent rows held out for the gate, fewer than "
            f"min_recent_rows {gate.min_recent_rows}: too few to judge, nothing promoted"
        )
    drop = -_gain(candidate_score, champion_score, gate.higher_is_better)
    if drop > gate.max_test_drop:
        return (
            f"loses {exact(drop, gate.max_test_drop)} {gate.metric} to champion "
            f"v{champion_version} on the test split, more than max_test_drop "
            f"{gate.max_test_drop}"
        )
    return None


def decide(
    candidate_version: str,
    candidate_score: float,
    champion_version: str | None,
    champion_score: float | None,
    gate: PromoteSettings,
    recent: RecentScores | None = None,
) -> Decision:
    """The gate itself: pure, so every branch is tested without a registry.

    ``threshold`` (unless null) always applies to the test split. The candidate must beat
    the champion by more than ``min_delta`` (a tie is not a win): on the recent rows when
    there are any (``recent``), else on the test split. With recent rows it must also not
    lose more than ``max_test_drop`` on the test split, and there must be at least
    ``min_recent_rows`` of them: fewer are too few to tell a better model from luck, and
    nothing is promoted.
    """
    higher = gate.higher_is_better

    def verdict(decision: str, reason: str) -> Decision:
        return Decision(
            decision,
            reason,
            gate.metric,
            candidate_version,
            candidate_score,
            champion_version,
            champion_score,
            "recent" if recent is not None else "test",
            recent.candidate if recent is not None else None,
            recent.champion if recent is not None else None,
        )

    bar = gate.threshold
    if bar is not None and not (candidate_score >= bar if higher else candidate_score <= bar):
        shown, side = exact(candidate_score, bar), "below" if higher else "above"
        return verdict("rejected", f"candidate {gate.metric} {shown} is {side} threshold {bar}")
    if champion_version is None or champion_score is None:
        return verdict("promoted", "first model: no champion yet")
    if champion_version == candidate_version:
        return verdict("promoted", "candidate already is the champion")
    new, old, where = candidate_score, champion_score, "the test split"
    if recent is not None:
        refusal = _recent_refusal(candidate_score, champion_version, champion_score, gate, recent)
        if refusal is not None:
            return verdict("rejected", refusal)
        assert recent.champion is not None  # a champion without a recent score is refused
        new, old, where = recent.candidate, recent.champion, "recent data"
    won = _gain(new, old, higher)
    if won > gate.min_delta:
        reason = (
            f"beats champion v{champion_version} on {where} by {_signed(won, gate.min_delta)} "
            f"(more than min_delta {gate.min_delta})"
        )
        return verdict("promoted", reason)
    reason = (
        f"does not beat champion v{champion_version} on {where}: "
        f"{_signed(won, gate.min_delta)} is not more than min_delta {gate.min_delta}"
    )
    return verdict("rejected", reason)


def apply_decision(client: MlflowClient, name: str, alias: str, decision: Decision) -> None:
    """Act on the decision in the registry: move the alias (recorded) and tag the candidate."""
    candidate = decision.candidate_version
    if decision.decision == "promoted" and candidate != decision.champion_version:
        move_champion(client, name, alias, candidate, f"promoted: {decision.reason}")
    for key, value in asdict(decision).items():
        client.set_model_version_tag(name, candidate, f"promotion.{key}", str(value))


def main() -> None:
    settings = load_settings_or_exit()
    gate, name = settings.promote, settings.model.name
    trained = read_json(settings.path(TRAIN_REPORT))
    registry = client(settings)
    test = read_table(settings.path(TEST_FILE))
    holdout = read_table(settings.path(RECENT_HOLDOUT_FILE))
    features, target = settings.data.features.all, settings.data.target

    def evaluate(uri: str) -> tuple[float, float | None]:
        """The model's score on the test split and (if any) on the recent holdout."""
        model = load_model(uri, tracking_uri(settings))

        def on(frame: pd.DataFrame) -> float:
            return model_score(model, frame[features], frame[target], gate.metric)

        return on(test), (on(holdout) if not holdout.empty else None)

    candidate = trained["model_version"]
    champion = champion_version(registry, name, gate.alias)
    champion_test, champion_recent = (
        evaluate(f"models:/{name}/{champion}") if champion is not None else (None, None)
    )
    candidate_test, candidate_recent = evaluate(trained["model_uri"])
    recent = (
        RecentScores(candidate_recent, champion_recent, len(holdout))
        if candidate_recent is not None
        else None
    )
    decision = decide(candidate, candidate_test, champion, champion_test, gate, recent)
    lineage = recent_lineage(settings.path(RECENT_FILE)) if recent is not None else {}
    if "retrain.trigger" in lineage:  # why this retrain ran, into the tags and the history
        decision = replace(decision, reason=f"{decision.reason}; {lineage['retrain.trigger']}")
    apply_decision(registry, name, gate.alias, decision)
    data = {
        "test": {"path": TEST_FILE, "rows": len(test)},
        "recent_holdout": {"path": RECENT_HOLDOUT_FILE, "rows": len(holdout)},
        "recent": {k.removeprefix("retrain."): v for k, v in lineage.items()},
    }
    write_json(
        {**asdict(decision), "model_name": name, "alias": gate.alias, "data": data},
        settings.path(PROMOTION_REPORT),
    )
    print(f"promote: {decision.decision}: {decision.reason}")


if __name__ == "__main__":
    main()
