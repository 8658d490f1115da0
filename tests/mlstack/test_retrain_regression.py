"""``mlstack retrain`` on a regression champion, short of ``dvc repro`` (which
tests/pipeline/test_regression_run.py runs): the capture log's prices (stored as label
strings) come back as float64 targets, exactly, fold into training and are held out for
an RMSE gate; too few labeled rows are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlstack.retrain_command import Refused, assemble
from monitoring.capture import LABELS, PREDICTIONS, storable_frame, write_frame
from pipeline.metrics import model_score
from pipeline.model import build_model
from pipeline.prepare import prepare, with_recent
from pipeline.schema import INTERVAL_LOWER, INTERVAL_UPPER, PREDICTION
from pipeline.settings import PROJECT_ROOT, Settings, load_settings

CARS = PROJECT_ROOT / "data" / "raw" / "car_price"
SERVED = 800
LABELED = 600


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    params = yaml.safe_load((PROJECT_ROOT / "examples/regression/params.yaml").read_text())
    params["data"]["path"] = str(CARS / "reference.parquet")
    params["train"]["hist_gradient_boosting"]["max_iter"] = 30
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return load_settings(tmp_path / "params.yaml")


def capture(settings: Settings, at: datetime, labeled: int) -> pd.DataFrame:
    """SERVED production cars as the service captured them, ``labeled`` of them with prices."""
    rows = pd.read_parquet(CARS / "production.parquet").head(SERVED).reset_index(drop=True)
    prices = pd.read_parquet(CARS / "production_labels.parquet").set_index("id")["price"]
    served = rows[settings.data.features.all].copy()
    served.insert(0, "request_id", [f"r{i}" for i in range(SERVED)])
    served.insert(1, "timestamp", pd.Timestamp(at))
    served.insert(2, "model_name", settings.model.name)
    served.insert(3, "model_version", "1")
    served[PREDICTION] = 5000.0
    served[INTERVAL_LOWER], served[INTERVAL_UPPER] = 4000.0, 6000.0
    numbers = [*settings.data.features.numerical, PREDICTION, INTERVAL_LOWER, INTERVAL_UPPER]
    store = settings.path(settings.capture.path)
    write_frame(store, PREDICTIONS, storable_frame(PREDICTIONS, served, numbers))
    truth = served[["request_id", "timestamp"]].head(labeled)
    truth = truth.assign(label=prices.loc[rows["id"].head(labeled)].to_numpy() / 3)
    write_frame(store, LABELS, storable_frame(LABELS, truth))
    return truth


def test_captured_prices_retrain_as_float64_targets_behind_an_rmse_gate(
    settings: Settings,
) -> None:
    at = datetime.now(UTC) - timedelta(hours=1)
    truth = capture(settings, at, LABELED)
    since, until = at - timedelta(minutes=1), at + timedelta(minutes=1)
    rows, lineage = assemble(settings, since, until, 500, "test")
    assert lineage["labeled_rows"] == LABELED and lineage["window_rows"] == SERVED
    assert rows["price"].dtype == "float64"
    # the label's one spelling (x / 3: 17 digits) reads back as the float that was sent; to
    # the last bit once the capture reads with as_numbers (r25-serving), not pd.to_numeric
    sent = truth.set_index("request_id")["label"].loc[rows["request_id"]].to_numpy()
    assert np.allclose(rows["price"].to_numpy(), sent, rtol=1e-15, atol=0)

    reference = pd.read_parquet(settings.path(settings.data.path)).sample(3000, random_state=0)
    train, test = prepare(reference, settings.data)
    combined, holdout = with_recent(train, rows, settings.data, settings.retrain)
    assert combined["price"].dtype == holdout["price"].dtype == "float64"
    assert len(holdout) == round(LABELED * settings.retrain.holdout)
    features = settings.data.features
    old = build_model(features, settings.train, 0, "regression")
    old.fit(train[features.all], train["price"])
    new = build_model(features, settings.train, 0, "regression")
    new.fit(combined[features.all], combined["price"])

    def rmse(model: object) -> float:
        return model_score(model, holdout[features.all], holdout["price"], "rmse")

    # prices a third of what the old model learned: the retrained one is closer on them
    assert np.isfinite(rmse(new)) and rmse(new) < rmse(old) - 300


def test_too_few_labeled_prices_are_refused(settings: Settings) -> None:
    at = datetime.now(UTC) - timedelta(hours=1)
    capture(settings, at, 100)
    with pytest.raises(Refused, match="100 labeled row"):
        assemble(settings, at - timedelta(minutes=1), at + timedelta(minutes=1), 500, "test")
