"""Shared data for the drift tests: a reference set and scored production years.

The model is the project's factory, trained on a sample of the 75% training split of
2015 with fewer boosting iterations to stay quick; the reference set is the other 25%
with its predictions, and the model's permutation importance on it, as the evaluate
stage writes them (two shuffles per feature instead of params.yaml's, to stay quick).
Each production year is scored by that model and joined with its labels. Built once per
session by ``testbeds.drift_data`` (which the false-alarm benchmark uses too): the tests
only read them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlstack.scenarios import inject
from pipeline.settings import load_settings
from testbeds import params
from testbeds.drift_data import RAW, YEARS, DriftData, build, score

__all__ = [
    "YEARS",
    "DriftData",
    "score",
    "covariate_shift",
    "concept_flip",
    "write_params",
    "drift_project",
    "case_windows",
    "CASES",
    "run_drift",
    "run_cases",
]

TRAIN_ROWS = 20_000  # of the 51,588 training rows: the same quality, a third of the time


@pytest.fixture(scope="session")
def drift_data() -> DriftData:
    return build(train_rows=TRAIN_ROWS, max_iter=60, importance_repeats=2)


def covariate_shift(frame: pd.DataFrame) -> pd.DataFrame:
    """The demo's ``covariate_shift`` scenario (params.yaml) injected into ``frame``."""
    settings = load_settings()
    shifted, _ = inject(frame, None, settings.scenarios["covariate_shift"], [])
    return shifted


def concept_flip(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """The demo's ``concept_flip`` scenario: labels flipped for a subgroup, inputs untouched."""
    settings = load_settings()
    classes = settings.data.classes or sorted(frame[target].unique())
    flipped, labels = inject(frame, frame[target], settings.scenarios["concept_flip"], classes)
    assert labels is not None
    flipped[target] = labels
    return flipped


def write_params(folder: Path, **drift: Any) -> Path:
    """A params.yaml in ``folder`` (the project root for that run) with ``drift`` overrides."""
    return params.write_params(
        folder, data={"path": str(RAW / "reference_2015.parquet")}, drift=drift
    )


def drift_project(root: Path, drift_data: DriftData, **drift: Any) -> Path:
    """A project folder for ``mlstack drift run``: params (with ``drift`` overrides), a
    4,000-row reference set and the champion's importance beside it."""
    from pipeline.io import write_json
    from pipeline.paths import IMPORTANCE_FILE, REFERENCE_FILE

    write_params(root, **drift)
    reference = root / REFERENCE_FILE
    reference.parent.mkdir(parents=True, exist_ok=True)
    drift_data.reference.sample(4000, random_state=0).to_parquet(reference)
    write_json({"metric": "roc_auc", "importance": drift_data.importance}, root / IMPORTANCE_FILE)
    return root


CASES = (  # the page's cases, in the order they run
    "stable",
    "covariate_shift",
    "concept_drift",
    "performance_drop",
    "no_labels",
    "insufficient_data",
)


def case_windows(drift_data: DriftData, folder: Path) -> dict[str, Path]:
    """One window per case the operator's page tells apart, as files ``--current`` reads:
    stable (2016, labeled), covariate shift (scored by the model, no labels yet), concept
    drift (2018, labels flipped for ages 40-59), performance drop (2017, people aged 55+,
    labels as observed), no labels (2016 without them), insufficient data (20 rows)."""
    target = drift_data.settings.data.target
    stable = drift_data.year(2016).sample(1500, random_state=0)
    year_2017 = drift_data.year(2017)
    frames = {
        "stable": stable,
        # scored again after the shift, as the service would score the shifted rows
        "covariate_shift": score(
            drift_data.model, covariate_shift(stable).drop(columns=target), drift_data.settings
        ),
        "concept_drift": concept_flip(drift_data.year(2018).sample(3000, random_state=4), target),
        "performance_drop": year_2017[year_2017["AGEP"] >= 55].sample(3000, random_state=5),
        "no_labels": stable.drop(columns=target),
        "insufficient_data": stable.head(20),
    }
    assert tuple(frames) == CASES
    paths = {}
    for name, frame in frames.items():
        paths[name] = folder / f"{name}.parquet"
        frame.to_parquet(paths[name])
    return paths


def run_drift(root: Path, *args: str) -> Any:
    """``mlstack drift run --json --no-workspace *args`` on the project in ``root``."""
    from typer.testing import CliRunner

    from mlstack.drift_command import drift_app

    return CliRunner().invoke(
        drift_app,
        ["run", "--no-workspace", "--json", *args],
        env={"MLSTACK_PARAMS": str(root / "params.yaml")},
        catch_exceptions=False,
    )


def run_cases(drift_data: DriftData, root: Path) -> dict[str, tuple[dict[str, Any], Path]]:
    """Each case's ``summary.json`` and ``report.html`` path, the cases run one after the
    other (no MLflow) in a project made in ``root``."""
    drift_project(root, drift_data)
    windows = case_windows(drift_data, root)
    out = {}
    for case in CASES:
        result = run_drift(root, "--no-mlflow", "--current", str(windows[case]))
        assert result.exit_code == 0, result.output
        folder = Path(json.loads(result.stdout)["folder"])
        out[case] = json.loads((folder / "summary.json").read_text()), folder / "report.html"
    return out
