"""The detectors bench/detection.py compares, each turned into one :class:`Verdict` a window.

- ``mlstack``: :func:`monitoring.drift.compare` with the dataset's settings (params.yaml's
  drift section as shipped), the test split as reference set and the training split's
  features as ``inputs`` where ``compare`` takes them.
- ``evidently``: Evidently's ``DataDriftPreset()`` with no options on the features (its
  per-column default methods and thresholds; dataset drift when at least half the
  columns drift).
- ``nannyml``: NannyML's ``UnivariateDriftCalculator`` with its defaults, chunked by the
  window's size, in its own environment (bench/nannyml); no dataset verdict of its own,
  so "any column alerts" stands for it.

Both defaults see the training and test splits' features (:func:`data_reference`), the
rows mlstack's data drift sees with ``drift.reference: all`` once ``compare`` takes ``inputs``.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.detection_data import Testbed
from pipeline.settings import PROJECT_ROOT

NANNYML = PROJECT_ROOT / "bench" / "nannyml"
# Its virtualenv lives beside the bench's other output, not in bench/nannyml/.venv: the
# layout tests read every .py file under bench/.
NANNYML_ENV = PROJECT_ROOT / ".bench" / "nannyml-venv"


def _uv_run(*args: str) -> list[str]:
    return ["uv", "run", "--locked", "--project", str(NANNYML), "python", *args]


def _uv_env() -> dict[str, str]:
    return {**os.environ, "UV_PROJECT_ENVIRONMENT": str(NANNYML_ENV)}


@dataclass(frozen=True)
class Verdict:
    columns: dict[str, bool]
    dataset: bool
    multivariate: bool | None = None  # None: the detector has no such test
    concept: bool | None = None
    thresholds: dict[str, str] | None = None  # mlstack's, "0.071 calibrated" or "0.1 fixed"


def takes(parameter: str) -> bool:
    """Whether this checkout's ``compare`` takes ``parameter`` (``inputs``, the training
    rows, and ``cache``, the calibration's folder, came with issue 27)."""
    from monitoring.drift import compare

    return parameter in inspect.signature(compare).parameters


def data_reference(testbed: Testbed) -> pd.DataFrame:
    """The rows the two defaults compare a window against: the training split's features
    and the test split's, as mlstack's data drift does with ``drift.reference: all``.
    NannyML's band needs them: on the test split alone a 2,000-row chunk of randhie's
    3,365 rows is its only reference chunk, and a band from one chunk flags most windows."""
    features = testbed.settings.data.features.all
    return pd.concat([testbed.inputs[features], testbed.reference[features]], ignore_index=True)


def mlstack(testbed: Testbed, window: pd.DataFrame, cache: Path) -> Verdict:
    """``compare`` as the drift job calls it; ``cache`` keeps the calibration between
    windows of one dataset, as the job's own folder does between runs."""
    from monitoring.drift import compare

    extra: dict[str, Any] = {"inputs": testbed.inputs} if takes("inputs") else {}
    if takes("cache"):
        extra["cache"] = cache
    summary = compare(
        testbed.reference, window, testbed.settings, importance=testbed.importance, **extra
    )
    multivariate = getattr(summary, "multivariate", None) or getattr(
        summary.data_drift, "multivariate", None
    )
    return Verdict(
        columns={c: v.detected for c, v in summary.data_drift.columns.items()},
        dataset=summary.data_drift.detected is True,
        multivariate=None if multivariate is None else multivariate.detected is True,
        concept=summary.concept_drift.detected is True,
        thresholds={
            c: f"{v.threshold:.3g} {'calibrated' if getattr(v, 'calibrated', False) else 'fixed'}"
            for c, v in summary.data_drift.columns.items()
        },
    )


def evidently(testbed: Testbed, reference: pd.DataFrame, window: pd.DataFrame) -> Verdict:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from monitoring.drift_reports import verdicts

    features = testbed.settings.data.features
    definition = DataDefinition(
        numerical_columns=list(features.numerical), categorical_columns=list(features.categorical)
    )
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(window[features.all], data_definition=definition),
        Dataset.from_pandas(reference[features.all], data_definition=definition),
    )
    columns = {c: v.detected for c, v in verdicts(snapshot, set(features.numerical)).items()}
    tests = snapshot.dict().get("tests", [])
    dataset = any(t.get("id") == "lt" and t.get("status") == "FAIL" for t in tests)
    return Verdict(columns=columns, dataset=dataset)


def nannyml_ready() -> str | None:
    """None when bench/nannyml's environment runs NannyML, else why not."""
    try:
        done = subprocess.run(
            _uv_run("-c", "import nannyml"),
            env=_uv_env(),
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"cannot run uv for bench/nannyml: {error}"
    if done.returncode:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])
        return f"bench/nannyml's environment cannot be built or imported: {tail}"
    return None


def nannyml(
    testbed: Testbed, reference: pd.DataFrame, windows: list[pd.DataFrame], size: int
) -> list[Verdict]:
    """One subprocess for all ``windows`` of one size: NannyML fits on the reference once."""
    features = testbed.settings.data.features
    with tempfile.TemporaryDirectory(prefix="mlstack-nannyml-") as folder:
        root = Path(folder)
        reference[features.all].to_parquet(root / "reference.parquet")
        frames = [w[features.all] for w in windows]
        pd.concat(frames, ignore_index=True).to_parquet(root / "windows.parquet")
        columns = {"numerical": features.numerical, "categorical": features.categorical}
        (root / "columns.json").write_text(json.dumps(columns))
        script = NANNYML / "univariate.py"
        paths = [root / n for n in ("reference.parquet", "windows.parquet")]
        args = [*map(str, paths), str(size), str(root / "columns.json"), str(root / "out.json")]
        done = subprocess.run(
            _uv_run(str(script), *args), env=_uv_env(), capture_output=True, text=True, check=False
        )
        if done.returncode:
            raise RuntimeError(f"NannyML failed: {done.stderr.strip()[-2000:]}")
        alerts = json.loads((root / "out.json").read_text())
    return [Verdict(columns=a, dataset=any(a.values())) for a in alerts]
