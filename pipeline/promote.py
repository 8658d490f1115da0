"""Stage 4, promote: the gate between a registered candidate and the ``champion`` alias.

The candidate becomes champion only if it reaches ``promote.min_score`` and beats the
current champion by at least ``promote.min_delta``, both scored on the same test split.
Otherwise the alias stays where it was. Either way the decision is written to
``reports/promotion.json`` and to tags on the candidate version in the registry; a move
of the alias is also recorded in the champion's history (``pipeline/registry.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from pipeline.io import read_json, read_table, write_json
from pipeline.labels import normalize_label
from pipeline.metrics import HIGHER_IS_BETTER, score
from pipeline.paths import PROMOTION_REPORT, TEST_FILE, TRAIN_REPORT
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
    champion_score: float | None


def decide(
    candidate_version: str,
    candidate_score: float,
    champion_version: str | None,
    champion_score: float | None,
    gate: PromoteSettings,
) -> Decision:
    """The gate itself: pure, so every branch is tested without a registry."""
    higher = HIGHER_IS_BETTER[gate.metric]

    def verdict(decision: str, reason: str) -> Decision:
        return Decision(
            decision,
            reason,
            gate.metric,
            candidate_version,
            candidate_score,
            champion_version,
            champion_score,
        )

    passes = candidate_score >= gate.min_score if higher else candidate_score <= gate.min_score
    if not passes:
        bound = "below" if higher else "above"
        reason = (
            f"candidate {gate.metric} {candidate_score:.4f} is {bound} min_score {gate.min_score}"
        )
        return verdict("rejected", reason)
    if champion_version is None or champion_score is None:
        return verdict("promoted", "first model: no champion yet")
    if champion_version == candidate_version:
        return verdict("promoted", "candidate already is the champion")
    gain = candidate_score - champion_score if higher else champion_score - candidate_score
    if gain >= gate.min_delta:
        reason = f"beats champion v{champion_version} by {gain:+.4f} (min_delta {gate.min_delta})"
        return verdict("promoted", reason)
    reason = f"does not beat champion v{champion_version}: {gain:+.4f} < min_delta {gate.min_delta}"
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
    X, y = test[settings.data.features.all], test[settings.data.target].astype(str)

    def evaluate(uri: str) -> float:
        model = load_model(uri, tracking_uri(settings))
        classes = [normalize_label(c) for c in model.classes_]
        return score(y, model.predict_proba(X), classes, gate.metric)

    candidate = trained["model_version"]
    champion = champion_version(registry, name, gate.alias)
    champion_score = evaluate(f"models:/{name}/{champion}") if champion is not None else None
    decision = decide(candidate, evaluate(trained["model_uri"]), champion, champion_score, gate)
    apply_decision(registry, name, gate.alias, decision)
    write_json(
        {**asdict(decision), "model_name": name, "alias": gate.alias},
        settings.path(PROMOTION_REPORT),
    )
    print(f"promote: {decision.decision}: {decision.reason}")


if __name__ == "__main__":
    main()
