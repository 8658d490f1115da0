"""Predictions from the registry: rows that come without them, and a reference set scored
by another model than the one that served the window (see :mod:`monitoring.served_model`
for which one that is)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from monitoring.capture import WindowSample
from monitoring.drift_summary import ModelInfo
from monitoring.served_model import MODEL_NAME, MODEL_VERSION, served_model
from pipeline.interval import Interval
from pipeline.model import predict_frame
from pipeline.schema import (
    INTERVAL_COLUMNS,
    PREDICTION,
    PROBA_PREFIX,
    coerce_features,
    proba_column,
)
from pipeline.settings import Settings
from pipeline.tracking import champion_uri, client, find_champion, load_model, tracking_uri

logger = logging.getLogger("monitoring.drift_job")


class NothingToScore(RuntimeError):
    """Rows lack predictions and no champion could be loaded to score them."""


class ReferenceMismatch(RuntimeError):
    """The reference set was scored by another model than the window's, and the window's
    could not be loaded to score it again."""


def has_predictions(frame: pd.DataFrame, settings: Settings) -> bool:
    """Whether ``frame`` holds the service's outputs: ``prediction`` and ``proba_<class>``,
    or for a regressor ``prediction`` and its interval's bounds."""
    if settings.data.is_regression:
        return all(c in frame.columns for c in (PREDICTION, *INTERVAL_COLUMNS))
    classes = settings.data.classes or []
    wanted = [PREDICTION, *(proba_column(c) for c in classes)]
    return bool(classes) and all(c in frame.columns for c in wanted)


def scored_with(
    frame: pd.DataFrame, model: Any, settings: Settings, interval: Interval | None = None
) -> pd.DataFrame:
    """``frame`` with the outputs of ``model`` (and a regressor's ``interval``), in place of
    any it had."""
    stale = [
        c
        for c in frame.columns
        if c in (PREDICTION, *INTERVAL_COLUMNS) or str(c).startswith(PROBA_PREFIX)
    ]
    predictions = predict_frame(model, coerce_features(frame, settings.data), interval)
    return pd.concat([frame.drop(columns=stale), predictions], axis=1)


def _interval(settings: Settings, name: str, version: str) -> Interval | None:
    """A regressor version's interval, from its registry tags (``None`` for a classifier)."""
    if not settings.data.is_regression:
        return None
    return Interval.from_tags(client(settings).get_model_version(name, version).tags)


def score_with_champion(frame: pd.DataFrame, settings: Settings) -> tuple[pd.DataFrame, ModelInfo]:
    """Add ``prediction`` and ``proba_<class>`` from the registry's champion."""
    try:
        champion = find_champion(client(settings), settings)
        model = load_model(f"models:/{champion.name}/{champion.version}", tracking_uri(settings))
    except Exception as error:
        raise NothingToScore(
            f"the rows have no predictions and the champion {champion_uri(settings)} "
            f"could not be loaded to score them: {error}"
        ) from error
    scored = scored_with(frame, model, settings, Interval.from_tags(champion.tags))
    return scored, ModelInfo(name=champion.name, version=champion.version)


def served_by(
    sample: WindowSample, model: ModelInfo | None, settings: Settings
) -> ModelInfo | None:
    """The model that served the window: the one the job scored it with, else the rule of
    :func:`monitoring.served_model.served_model` on its rows. ``None`` when nothing says."""
    if model is not None:
        return model
    return served_model(sample.current, settings.model.name)


def reference_for(
    reference: pd.DataFrame, served: ModelInfo | None, settings: Settings
) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """The reference set with the predictions of the model version that served the window.

    ``evaluate`` scores the reference with its candidate, and names it in the set's
    ``model_name`` and ``model_version`` columns. The gate may reject that candidate, and
    ``mlstack model rollback`` moves the champion without running ``evaluate``: the
    reference then holds another model's predictions, and comparing them with the
    window's would judge two models, not the data (a false prediction or concept drift).
    Such a reference is scored again by the served version, from the registry. A set
    that names no version (written by hand, or before this check) is used as it is.
    Returns the set and what scored it, for the summary.
    """
    if served is None or MODEL_VERSION not in reference.columns:
        return reference, None
    scored = sorted(set(reference[MODEL_VERSION].dropna().astype(str)))
    names = set(reference[MODEL_NAME].dropna().astype(str)) if MODEL_NAME in reference else set()
    if scored == [served.version] and names <= {served.name}:
        return reference, {"model_version": served.version, "rescored_from": None}
    uri = f"models:/{served.name}/{served.version}"
    try:
        model = load_model(uri, tracking_uri(settings))
        interval = _interval(settings, served.name, served.version)
    except Exception as error:
        raise ReferenceMismatch(
            f"the window was served by {served.name} version {served.version}, but the "
            f"reference set was scored by version {', '.join(scored) or 'unknown'}, and "
            f"{uri} could not be loaded to score it again: {error}"
        ) from error
    rescored = scored_with(reference, model, settings, interval)
    rescored[MODEL_NAME] = served.name
    rescored[MODEL_VERSION] = served.version
    logger.info(
        "drift: the reference set was scored by version %s; scored again by %s",
        ", ".join(scored) or "unknown",
        uri,
    )
    return rescored, {"model_version": served.version, "rescored_from": ", ".join(scored)}
