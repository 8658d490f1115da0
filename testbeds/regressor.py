"""A small car-price regressor, registered and packed, for the serving tests and benchmarks.

The pipeline stages make the real one (train, evaluate's interval tags, package's labels);
the serving tests and ``bench/serving.py`` need one without a ``dvc repro``: fitted here by
the model factory on the first rows of ``data/raw/car_price/reference.parquet``, its
split-conformal interval calibrated on held-out rows (``pipeline.interval.calibrate``),
logged in skops to a project's embedded MLflow store, its version tagged with the interval
as the evaluate stage does, the champion alias moved to it, and imported into the BentoML
store (``BENTOML_HOME``) with ``pipeline.bento.import_champion``, which copies the tags
into the model's labels.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from monitoring.capture import ScoredBatch
from pipeline.interval import Interval, calibrate
from pipeline.model import build_model
from pipeline.schema import INTERVAL_COLUMNS, coerce_features
from pipeline.settings import PROJECT_ROOT, Settings, load_settings
from pipeline.tracking import Champion
from testbeds.params import write_params

EXAMPLE = PROJECT_ROOT / "examples" / "regression" / "params.yaml"
CAR_PRICES = PROJECT_ROOT / "data" / "raw" / "car_price" / "reference.parquet"


def car_price_params(folder: Path, small: bool = True) -> Path:
    """``examples/regression/params.yaml`` in ``folder`` (its store, its capture), reading
    the shipped car prices; ``small``: fewer trees, a test's model (the benchmark keeps the
    example's)."""
    train = yaml.safe_load(EXAMPLE.read_text())["train"]
    if small:
        train["hist_gradient_boosting"]["max_iter"] = 40
        train["random_forest"]["n_estimators"] = 20
    return write_params(folder, EXAMPLE, data={"path": str(CAR_PRICES)}, train=train)


def fit_regressor(
    settings: Settings, estimator: str = "hist_gradient_boosting", rows: int = 3000
) -> tuple[Any, Interval, pd.DataFrame]:
    """A fitted pipeline of ``estimator``, its interval, and rows it never saw (features)."""
    frame = pd.read_parquet(settings.path(settings.data.path))
    data = settings.data
    X = coerce_features(frame, data)
    y = frame[data.target].astype("float64")
    train = settings.train.model_copy(update={"estimator": estimator})
    model = build_model(data.features, train, data.seed, task="regression")
    model.fit(X.iloc[:rows], y.iloc[:rows])
    held = slice(rows, rows + 1000)
    interval = calibrate(y.iloc[held].to_numpy() - model.predict(X.iloc[held]), 0.9)
    return model, interval, X.iloc[rows + 1000 :]


def register(settings: Settings, model: Any, interval: Interval | None) -> Champion:
    """Log ``model`` to the project's store as a new version of ``model.name``, tagged with
    ``interval`` (none: untagged, as no evaluate stage would leave it), made champion."""
    import mlflow

    from pipeline.registry import move_champion
    from pipeline.tracking import client, configure, log_skops_model

    configure(settings)
    name = settings.model.name
    with mlflow.start_run() as run:
        info = log_skops_model(model, name, ["scikit-learn", "skops"])
    version = str(info.registered_model_version)
    registry = client(settings)
    for key, value in (interval.tags() if interval is not None else {}).items():
        registry.set_model_version_tag(name, version, key, value)
    move_champion(registry, name, settings.promote.alias, version, "test")
    return Champion(name=name, version=version, run_id=run.info.run_id)


def packed_regressor(
    folder: Path,
    estimator: str = "hist_gradient_boosting",
    tagged: bool = True,
    small: bool = True,
) -> Path:
    """A project folder with a registered car-price champion, packed into ``BENTOML_HOME``
    (set it first), its interval tags left out unless ``tagged``; returns its params.yaml.
    ``small``: a test's model on 3,000 rows; else the example's, on 40,000."""
    from pipeline.bento import import_champion

    params = car_price_params(folder, small=small)
    settings = load_settings(params)
    model, interval, _ = fit_regressor(settings, estimator, rows=3000 if small else 40_000)
    import_champion(settings, register(settings, model, interval if tagged else None))
    return params


def regression_batch(settings: Settings, values: list[float]) -> ScoredBatch:
    """A regressor's served batch as the service hands it to the capture writer: its rows,
    the predictions and the bounds of a 250-wide interval."""
    import numpy as np

    features = settings.data.features
    rows = [
        {**dict.fromkeys(features.numerical, 3.0), **dict.fromkeys(features.categorical, "diesel")}
        for _ in values
    ]
    predictions = np.asarray(values, dtype="float64")
    lower, upper = Interval(250.0, 0.9).bounds(predictions)
    return ScoredBatch(
        timestamp=datetime(2026, 3, 1, 12, tzinfo=UTC),
        model_name="car-price-regressor",
        model_version="1",
        request_ids=[f"r{i}" for i in range(len(values))],
        features=rows,
        predictions=predictions.tolist(),
        probabilities=np.column_stack([lower, upper]),
        proba_columns=INTERVAL_COLUMNS,
    )


if __name__ == "__main__":  # python -m testbeds.regressor <folder> [--untagged] [--full]
    import sys

    flags = sys.argv[2:]
    print(
        packed_regressor(
            Path(sys.argv[1]), tagged="--untagged" not in flags, small="--full" not in flags
        )
    )
