"""The champion's history, kept in the MLflow model registry itself, and rollback.

Every move of the champion alias (the promote stage promoting a candidate, or a
rollback) is recorded where the alias lives, so the history travels with the store:

- on the version that becomes champion, the tags ``<alias>.since`` (UTC, ISO 8601),
  ``<alias>.previous`` (the version it replaced, empty for the first) and
  ``<alias>.reason`` ("promoted: ..." or "rollback from vN") describe its latest stint;
- on the registered model, one tag per change, ``<alias>.history.<n>``, holds the same
  facts as JSON, so a version that is champion twice keeps both entries.

A rollback goes to the version the current champion replaced, like
``kubectl rollout undo``: a second rollback undoes the first. ``to`` names any other
registered version. Every function takes an explicit ``MlflowClient``: none relies on
MLflow's process-wide tracking URI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel


class RegistryError(ValueError):
    """A registry change that cannot be made; the message names why. Nothing was changed."""


@dataclass(frozen=True)
class ChampionChange:
    """One move of the alias: which version became champion, when, replacing which, and why."""

    version: str
    since: str
    previous: str | None
    reason: str
    metric: str | None = None  # the version's promotion.metric tag, if the gate scored it
    score: float | None = None  # its promotion.candidate_score tag
    current: bool = False  # this change is what the alias points at now


@dataclass(frozen=True)
class History:
    name: str
    alias: str
    champion: str | None
    changes: list[ChampionChange] = field(default_factory=list)  # newest first


def since_tag(alias: str) -> str:
    return f"{alias}.since"


def previous_tag(alias: str) -> str:
    return f"{alias}.previous"


def reason_tag(alias: str) -> str:
    return f"{alias}.reason"


def history_prefix(alias: str) -> str:
    return f"{alias}.history."


def _registered(client: MlflowClient, name: str) -> RegisteredModel:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise RegistryError(f"no registered model named {name!r} in the registry") from None
        raise


def _aliased(model: RegisteredModel, alias: str) -> str | None:
    version = model.aliases.get(alias)
    return None if version is None else str(version)


def _registered_versions(client: MlflowClient, name: str) -> list[str]:
    found = client.search_model_versions(f"name = '{name}'")
    return sorted((str(v.version) for v in found), key=int)


def _version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, version)
    except MlflowException as error:
        if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
    known = ", ".join(_registered_versions(client, name)) or "none"
    raise RegistryError(f"{name} has no version {version!r} (registered versions: {known})")


def champion_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version the alias points at, ``None`` when there is no champion yet."""
    return _aliased(_registered(client, name), alias)


def _history_keys(model: RegisteredModel, alias: str) -> dict[int, str]:
    """The model's history tags by sequence number."""
    prefix = history_prefix(alias)
    numbers = (key.removeprefix(prefix) for key in model.tags if key.startswith(prefix))
    return {int(n): f"{prefix}{n}" for n in numbers if n.isdigit()}


def _next_key(model: RegisteredModel, alias: str) -> str:
    return f"{history_prefix(alias)}{max(_history_keys(model, alias), default=0) + 1:04d}"


def move_champion(
    client: MlflowClient,
    name: str,
    alias: str,
    version: str,
    reason: str,
    now: datetime | None = None,
) -> ChampionChange:
    """Point the alias at ``version`` and record the change; refuses if it already is there."""
    model = _registered(client, name)
    version = str(_version(client, name, version).version)
    previous = _aliased(model, alias)
    if previous == version:
        raise RegistryError(f"{name} v{version} already is the {alias}")
    since = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    change = ChampionChange(version=version, since=since, previous=previous, reason=reason)
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, since_tag(alias), since)
    client.set_model_version_tag(name, version, previous_tag(alias), previous or "")
    client.set_model_version_tag(name, version, reason_tag(alias), reason)
    entry = {"version": version, "since": since, "previous": previous, "reason": reason}
    client.set_registered_model_tag(name, _next_key(model, alias), json.dumps(entry))
    return change


def rollback(
    client: MlflowClient,
    name: str,
    alias: str,
    to: str | None = None,
    now: datetime | None = None,
) -> ChampionChange:
    """Move the alias back to the version the champion replaced, or to ``to``, and record it."""
    current = champion_version(client, name, alias)
    if to is None:
        if current is None:
            raise RegistryError(f"{name} has no {alias}: there is nothing to roll back")
        tags = _version(client, name, current).tags
        previous = tags.get(previous_tag(alias)) or None
        if previous is None:
            raise RegistryError(
                f"{name} v{current} has no previous {alias} recorded (it was the first, or "
                f"became {alias} before mlstack kept a history): give --to VERSION"
            )
        try:
            target = str(_version(client, name, previous).version)
        except RegistryError as error:
            raise RegistryError(f"the previous {alias} is gone: {error}") from None
    else:
        target = str(_version(client, name, to).version)
    if target == current:
        raise RegistryError(f"{name} v{target} already is the {alias}")
    moved = f"from v{current}" if current else f"to v{target}, no {alias} before"
    return move_champion(client, name, alias, target, f"rollback {moved}", now)


def _parse_entry(key: str, value: str) -> dict[str, Any]:
    try:
        entry = json.loads(value)
        if not isinstance(entry, dict) or not {"version", "since", "reason"} <= entry.keys():
            raise ValueError("not a mapping with version, since and reason")
    except ValueError as error:
        raise RegistryError(f"model tag {key} is not a recorded change: {error}") from None
    return entry


def _score(tags: dict[str, str]) -> float | None:
    try:
        return float(tags["promotion.candidate_score"])
    except (KeyError, ValueError):
        return None


def history(client: MlflowClient, name: str, alias: str) -> History:
    """Every recorded change of the alias, newest first, with each version's promotion score."""
    model = _registered(client, name)
    champion = _aliased(model, alias)
    keys = _history_keys(model, alias)
    entries = [_parse_entry(keys[n], model.tags[keys[n]]) for n in sorted(keys, reverse=True)]
    tags: dict[str, dict[str, str]] = {}
    for version in {str(e["version"]) for e in entries}:
        try:
            tags[version] = dict(_version(client, name, version).tags)
        except RegistryError:  # deleted since: its entry stays, without a score
            tags[version] = {}
    changes = []
    for index, entry in enumerate(entries):
        version = str(entry["version"])
        changes.append(
            ChampionChange(
                version=version,
                since=str(entry["since"]),
                previous=str(entry["previous"]) if entry.get("previous") else None,
                reason=str(entry["reason"]),
                metric=tags[version].get("promotion.metric"),
                score=_score(tags[version]),
                current=index == 0 and version == champion,
            )
        )
    return History(name=name, alias=alias, champion=champion, changes=changes)
