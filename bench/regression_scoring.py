"""Serving's model call, regressor beside classifier: the scoring path the service runs per
batch (serving/scoring.py), in process, on the same machine, interleaved in one run.

- classifier: the shipped employment ``HistGradientBoostingClassifier`` (params.yaml's
  hyperparameters), ``predict_proba`` on validated rows;
- regressor: the car-price ``HistGradientBoostingRegressor`` (examples/regression/
  params.yaml), ``predict`` plus its conformal interval's bounds, as the service answers.

Each is timed on the compiled input path and on the model's own pandas pipeline, for
batches of 1 and 100 rows (a single client, and a micro-batch under load), taking the
median of ``--rounds`` rounds of ``--calls`` calls, the setups rotating within a round.
No HTTP and no capture: those costs are the same for both tasks (bench/serving.py measures
them for the classifier). Prints Markdown.

    uv run python -m bench.regression_scoring [--rounds 5] [--calls 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import yaml

from bench.harness import header, load_average, markdown
from pipeline.evaluate import evaluate
from pipeline.model import build_model
from pipeline.prepare import prepare
from pipeline.settings import PROJECT_ROOT, Settings, load_settings, parse_settings
from serving.scoring import Scorer, prepare_scorer

BATCHES = (1, 100)


def _rows(frame: pd.DataFrame, settings: Settings, count: int) -> list[dict[str, Any]]:
    """Validated rows as the service holds them: floats, strings, None for missing."""
    features = settings.data.features
    rows = frame[features.all].head(count).astype(object).where(frame.notna(), None)
    records: list[dict[str, Any]] = rows.to_dict("records")
    for record in records:
        for column in features.numerical:
            if record[column] is not None:
                record[column] = float(record[column])
        for column in features.categorical:
            if record[column] is not None:
                record[column] = str(record[column])
    return records


def classifier() -> tuple[Settings, Any, pd.DataFrame]:
    settings = load_settings(PROJECT_ROOT / "params.yaml")
    raw = pd.read_parquet(PROJECT_ROOT / settings.data.path).sample(20000, random_state=0)
    train, test = prepare(raw, settings.data)
    features = settings.data.features
    model = build_model(features, settings.train, 0, "classification")
    return settings, model.fit(train[features.all], train[settings.data.target]), test


def regressor() -> tuple[Settings, Any, pd.DataFrame, Any]:
    raw_params = yaml.safe_load((PROJECT_ROOT / "examples/regression/params.yaml").read_text())
    raw_params["evaluate"]["importance_repeats"] = 1
    settings = parse_settings(raw_params, root=PROJECT_ROOT)
    raw = pd.read_parquet(PROJECT_ROOT / settings.data.path).sample(20000, random_state=0)
    train, test = prepare(raw, settings.data)
    features = settings.data.features
    model = build_model(features, settings.train, 0, "regression")
    model.fit(train[features.all], train[settings.data.target])
    interval = evaluate(model, test, pd.DataFrame(), settings, model_name="b", model_version="1")
    return settings, model, test, interval.interval


def _scorer(model: Any, settings: Settings, compiled: bool) -> Scorer:
    serving = settings.serving.model_copy(update={"compiled_inputs": compiled})
    return prepare_scorer(model, settings.model_copy(update={"serving": serving}))


def setups() -> dict[str, tuple[Callable[[list[dict[str, Any]]], Any], list[dict[str, Any]]]]:
    """Each setup's call and the rows it scores."""
    c_settings, c_model, c_test = classifier()
    r_settings, r_model, r_test, interval = regressor()
    out = {}
    for compiled in (True, False):
        path = "compiled" if compiled else "pipeline"
        scorer = _scorer(c_model, c_settings, compiled)
        out[f"classifier, {path}"] = (scorer.predict_proba, _rows(c_test, c_settings, 100))
        regression = _scorer(r_model, r_settings, compiled)

        def answer(rows: list[dict[str, Any]], scorer: Scorer = regression) -> Any:
            values = scorer.predict(rows)
            return np.column_stack(interval.bounds(values))

        out[f"regressor, {path}"] = (answer, _rows(r_test, r_settings, 100))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)  # as each service worker does (serving.model_threads: 1)
    timed = setups()
    names = list(timed)
    seconds: dict[tuple[str, int], list[float]] = {(n, b): [] for n in names for b in BATCHES}
    for round_ in range(args.rounds):
        for offset in range(len(names)):
            name = names[(round_ + offset) % len(names)]
            call, rows = timed[name]
            for batch in BATCHES:
                chunk = rows[:batch]
                call(chunk)  # warm
                started = time.perf_counter()
                for _ in range(args.calls):
                    call(chunk)
                seconds[(name, batch)].append((time.perf_counter() - started) / args.calls)
    print(header("Scoring path per model call: regressor beside classifier"))
    print(f"{args.rounds} rounds x {args.calls} calls; load average {load_average()}\n")
    table = []
    for name in names:
        row: list[Any] = [name]
        for batch in BATCHES:
            median = statistics.median(seconds[(name, batch)])
            row += [f"{median * 1e6:,.0f}", f"{median * 1e6 / batch:,.1f}"]
        table.append(row)
    print(markdown(["setup", "1 row: µs/call", "µs/row", "100 rows: µs/call", "µs/row"], table))


if __name__ == "__main__":
    main()
