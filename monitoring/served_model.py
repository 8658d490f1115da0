"""Which model served a window: one rule, used by the summary and by the re-scoring.

A champion switch can fall inside a window, so its rows may name several versions. The
window is said to be served by the version that served **most of its rows** (the rows the
verdicts see: the whole window when it fits ``drift.sample_rows``, else its sample); a tie
goes to the **latest version** (the registry numbers versions in the order they were
registered, so the highest number; versions that are not numbers compare as text). The
summary's ``model`` names that version, and the same version scores the reference set
again when the reference was scored by another (:mod:`monitoring.drift_job.rescore`), so
one run never names one model and compares the predictions of another.
"""

from __future__ import annotations

import pandas as pd

from monitoring.drift_summary import ModelInfo

MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"


def _latest_first(version: str) -> tuple[int, int, str]:
    """Sort key putting the latest version first: numbers by value, then text."""
    return (0, -int(version), "") if version.isdigit() else (1, 0, version)


def served_model(rows: pd.DataFrame, default_name: str) -> ModelInfo | None:
    """The model that served ``rows`` by the rule above, or ``None`` when no row names one.

    Its name is the one most of that version's rows give (``default_name`` when they give
    none)."""
    if MODEL_VERSION not in rows.columns:
        return None
    versions = rows[MODEL_VERSION].dropna().astype(str)
    if versions.empty:
        return None
    counts = versions.value_counts()
    most = counts[counts == counts.max()].index
    version = str(min(most, key=lambda v: _latest_first(str(v))))
    name = default_name
    if MODEL_NAME in rows.columns:
        names = rows.loc[versions.index[versions == version], MODEL_NAME].dropna().astype(str)
        if not names.empty:
            named = names.value_counts()
            name = str(min(named[named == named.max()].index))
    return ModelInfo(name=name, version=version)
