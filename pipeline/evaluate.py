"""Stage 3, evaluate: score the candidate on the test split, draw its plots, and write
the reference set that the drift job compares live traffic against.

The reference set is the test split with the candidate's predicted label and class
probabilities, in the same columns the capture log uses, so reference and current line
up column for column, and the candidate's name and version (``model_name``,
``model_version``): the drift job scores the set again when another version serves.
Beside it goes the candidate's permutation importance per feature (on the same split,
with ``promote.metric``): the drift job weighs drifted columns by it, so a shift in the
feature the model leans on counts for more than one in a feature it ignores.

After a retrain the reference set also holds the recent rows held out for the gate
(scored the same way): the reference is what the model was judged on, so the drift job
compares new traffic with the world the model was fitted to, the recent one included, and
CBPE calibrates its probabilities on rows of that world. Metrics and plots stay on the
test split, comparable from run to run; the recent rows' metrics are logged beside them.

The core, :func:`evaluate`, takes the model, the two splits and the settings and reads no
file; :func:`write` and ``main`` do the file and tracking I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_regressor
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

from pipeline.interval import Interval, IntervalError, calibrate
from pipeline.io import read_json, read_table, write_json, write_parquet
from pipeline.labels import normalize_label
from pipeline.metrics import all_metrics, permutation_importance, regression_metrics
from pipeline.model import predict_frame
from pipeline.paths import (
    IMPORTANCE_FILE,
    INPUTS_FILE,
    METRICS_FILE,
    PLOTS_DIR,
    RECENT_HOLDOUT_FILE,
    REFERENCE_FILE,
    TEST_FILE,
    TRAIN_FILE,
    TRAIN_REPORT,
)
from pipeline.schema import PREDICTION, proba_columns
from pipeline.settings import (
    DataSettings,
    Settings,
    SettingsError,
    exit_on_bad_settings,
    load_settings_or_exit,
)
from pipeline.tracking import client, configure, load_model, tracking_uri


def reference_set(
    test: pd.DataFrame, predictions: pd.DataFrame, data: DataSettings
) -> pd.DataFrame:
    # The recent rows held out for the gate carry no id (their request ids are not the
    # data's): they get missing ids beside the test split's.
    keep = [c for c in (data.id, data.timestamp) if c is not None and c in test.columns]
    return pd.concat([test[[*keep, *data.features.all, data.target]], predictions], axis=1)


def training_inputs(train: pd.DataFrame, data: DataSettings) -> pd.DataFrame:
    """The features (and id and timestamp) of the rows the model was trained on."""
    keep = [c for c in (data.id, data.timestamp) if c is not None and c in train.columns]
    return train[[*keep, *data.features.all]]


def curves(y_true: pd.Series, proba: np.ndarray, classes: list[str]) -> dict[str, pd.DataFrame]:
    """ROC and precision-recall points (one-vs-rest per class; the positive class when binary)."""
    positives = classes[1:] if len(classes) == 2 else classes
    roc, pr = [], []
    for label in positives:
        column = classes.index(label)
        fpr, tpr, _ = roc_curve(y_true == label, proba[:, column])
        precision, recall, _ = precision_recall_curve(y_true == label, proba[:, column])
        roc.append(thin(pd.DataFrame({"fpr": fpr, "tpr": tpr, "class": label})))
        pr.append(thin(pd.DataFrame({"recall": recall, "precision": precision, "class": label})))
    predicted = np.asarray(classes)[proba.argmax(axis=1)]
    confusion = pd.DataFrame({"actual": y_true.to_numpy(), "predicted": predicted})
    return {
        "roc": pd.concat(roc),
        "precision_recall": pd.concat(pr),
        "confusion": confusion,
    }


def thin(points: pd.DataFrame, most: int = 500) -> pd.DataFrame:
    """About ``most`` evenly spaced points of one curve: enough to draw, small enough for git."""
    return points.iloc[:: max(1, len(points) // most)]


def draw_regression(tables: dict[str, pd.DataFrame], folder: Path) -> None:
    """Predicted against actual (with the diagonal) and residuals against predicted, PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    points = tables["predicted_actual"]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(points["actual"], points["predicted"], s=6, alpha=0.5)
    edges = [points.to_numpy().min(), points.to_numpy().max()]
    ax.plot(edges, edges, color="grey", linewidth=1)
    ax.set(xlabel="actual", ylabel="predicted", title="predicted against actual")
    fig.savefig(folder / "predicted_actual.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    residuals = tables["residuals"]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(residuals["predicted"], residuals["residual"], s=6, alpha=0.5)
    ax.axhline(0, color="grey", linewidth=1)
    ax.set(xlabel="predicted", ylabel="actual - predicted", title="residuals")
    fig.savefig(folder / "residuals.png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def draw(tables: dict[str, pd.DataFrame], classes: list[str], folder: Path) -> None:
    """PNG plots: they render offline, unlike DVC's Vega HTML (which loads Vega from a CDN)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not classes:
        draw_regression(tables, folder)
        return
    folder.mkdir(parents=True, exist_ok=True)
    for name, (x, y) in {
        "roc": ("fpr", "tpr"),
        "precision_recall": ("recall", "precision"),
    }.items():
        fig, ax = plt.subplots(figsize=(5, 4))
        for label, points in tables[name].groupby("class"):
            ax.plot(points[x], points[y], label=f"class {label}")
        ax.set(xlabel=x, ylabel=y, title=name.replace("_", "-"))
        ax.legend()
        fig.savefig(folder / f"{name}.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
    confusion = tables["confusion"]
    matrix = confusion_matrix(confusion["actual"], confusion["predicted"], labels=classes)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center")
    ax.set(
        xticks=range(len(classes)),
        yticks=range(len(classes)),
        xticklabels=classes,
        yticklabels=classes,
    )
    ax.set(xlabel="predicted", ylabel="actual", title="confusion matrix")
    fig.savefig(folder / "confusion.png", dpi=100, bbox_inches="tight")
    plt.close(fig)


@dataclass(frozen=True)
class Evaluation:
    """What the stage writes: the test split's metrics and plot points, the recent hold-out's
    metrics (empty without recent rows), the reference set and the permutation importance;
    for a regressor also its split-conformal interval (``classes`` is then empty)."""

    classes: list[str]
    metrics: dict[str, Any]
    recent_metrics: dict[str, float]
    curves: dict[str, pd.DataFrame]
    reference: pd.DataFrame
    importance: dict[str, float]
    interval: Interval | None = None


@dataclass(frozen=True)
class _Scored:
    """The test split scored by one task's rules."""

    classes: list[str]
    metrics: dict[str, Any]
    curves: dict[str, pd.DataFrame]
    predictions: pd.DataFrame
    interval: Interval | None


def _classified(model: Any, test: pd.DataFrame, data: DataSettings) -> _Scored:
    classes = [normalize_label(c) for c in model.classes_]
    y_true = test[data.target].astype(str)
    predictions = predict_frame(model, test[data.features.all])
    proba = predictions[proba_columns(classes)].to_numpy()
    metrics = all_metrics(y_true, proba, classes)
    return _Scored(classes, metrics, curves(y_true, proba, classes), predictions, None)


def _regressed(model: Any, test: pd.DataFrame, settings: Settings) -> _Scored:
    """Metrics, plot points and the interval: calibrated on a seeded half of the test split,
    its coverage measured on the other half (rows the calibration never saw)."""
    data = settings.data
    y_true = test[data.target].astype("float64").to_numpy()
    predicted = np.asarray(model.predict(test[data.features.all]), dtype="float64")
    calibration = np.random.default_rng(data.seed).random(len(test)) < 0.5
    residuals = y_true - predicted
    interval = calibrate(residuals[calibration], settings.evaluate.interval_coverage)
    inside = np.abs(residuals[~calibration]) <= interval.half_width
    if not len(inside):
        raise IntervalError(f"no row of the {len(test)} test rows is left to check its coverage")
    metrics = {
        **regression_metrics(y_true, predicted),
        "interval_coverage": float(inside.mean()),
        "interval_half_width": interval.half_width,
    }
    points = pd.DataFrame({"actual": y_true, "predicted": predicted, "residual": residuals})
    points = points.sample(n=min(len(points), 500), random_state=data.seed)
    tables = {
        "predicted_actual": points[["actual", "predicted"]],
        "residuals": points[["predicted", "residual"]],
    }
    predictions = predict_frame(model, test[data.features.all], interval)
    return _Scored([], metrics, tables, predictions, interval)


def _recent_metrics(
    model: Any, holdout: pd.DataFrame, scored: pd.DataFrame, data: DataSettings
) -> dict[str, float]:
    """The recent hold-out's metrics, named ``recent_<metric>``."""
    if is_regressor(model):
        recent = regression_metrics(holdout[data.target].astype("float64"), scored[PREDICTION])
    else:
        classes = [normalize_label(c) for c in model.classes_]
        proba = scored[proba_columns(classes)].to_numpy()
        recent = all_metrics(holdout[data.target].astype(str), proba, classes)
    return {f"recent_{k}": v for k, v in recent.items() if isinstance(v, float)}


def evaluate(
    model: Any,
    test: pd.DataFrame,
    holdout: pd.DataFrame,
    settings: Settings,
    *,
    model_name: str,
    model_version: str,
) -> Evaluation:
    """Score ``model`` on the test split (and the recent hold-out, if any rows): no files read.

    A split missing a feature or the target is an error naming the columns, not a KeyError
    deep in scikit-learn.
    """
    data = settings.data
    for name, frame in (("test split", test), ("recent hold-out", holdout)):
        if name == "recent hold-out" and frame.empty:
            continue
        missing = [c for c in (*data.features.all, data.target) if c not in frame.columns]
        if missing:
            raise ValueError(f"evaluate: the {name} has no column(s) {', '.join(missing)}")
    tested = (
        _regressed(model, test, settings) if is_regressor(model) else _classified(model, test, data)
    )
    reference = reference_set(test, tested.predictions, data)
    recent_metrics: dict[str, float] = {}
    if not holdout.empty:
        scored = predict_frame(model, holdout[data.features.all], tested.interval)
        reference = pd.concat([reference, reference_set(holdout, scored, data)], ignore_index=True)
        recent_metrics = _recent_metrics(model, holdout, scored, data)
    # What scored it: the drift job scores it again when another version serves (a
    # rejected candidate, a rollback), instead of comparing two models' predictions.
    reference["model_name"] = model_name
    reference["model_version"] = model_version
    importance = permutation_importance(
        model,
        test[data.features.all],
        test[data.target],
        settings.promote.metric,
        settings.evaluate.importance_repeats,
        data.seed,
        settings.evaluate.importance_rows,
    )
    return Evaluation(
        tested.classes,
        tested.metrics,
        recent_metrics,
        tested.curves,
        reference,
        importance,
        tested.interval,
    )


def write(evaluation: Evaluation, settings: Settings) -> Path:
    """The stage's files: plot points and PNGs, the reference set, metrics and importance.

    Returns the plots folder (logged to MLflow as the run's ``plots``)."""
    folder = settings.path(PLOTS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in evaluation.curves.items():
        table.to_csv(folder / f"{name}.csv", index=False)
    draw(evaluation.curves, evaluation.classes, folder)
    write_parquet(evaluation.reference, settings.path(REFERENCE_FILE))
    write_json(evaluation.metrics, settings.path(METRICS_FILE))
    write_json(
        {"metric": settings.promote.metric, "importance": evaluation.importance},
        settings.path(IMPORTANCE_FILE),
    )
    return folder


def headline(evaluation: Evaluation, test: pd.DataFrame, settings: Settings) -> list[str]:
    """What the stage prints: the task's main metrics; for a regressor without MAPE, why."""
    metrics = evaluation.metrics
    regressor = evaluation.interval is not None
    shown = (
        ("rmse", "mae", "r2", "interval_coverage") if regressor else ("roc_auc", "accuracy", "f1")
    )
    lines = [
        f"evaluate: {', '.join(f'{m}={metrics[m]:.4f}' for m in shown)} on {len(test)} test rows"
    ]
    if regressor and "mape" not in metrics:
        zeros = int((test[settings.data.target] == 0).sum())
        lines.append(f"evaluate: no mape: {zeros} test target(s) are 0 (an infinite % error)")
    return lines


def main() -> None:
    import mlflow

    settings = load_settings_or_exit()
    trained = read_json(settings.path(TRAIN_REPORT))
    configure(settings)
    model = load_model(trained["model_uri"], tracking_uri(settings))
    test = read_table(settings.path(TEST_FILE))
    try:
        evaluation = evaluate(
            model,
            test,
            read_table(settings.path(RECENT_HOLDOUT_FILE)),
            settings,
            model_name=trained["model_name"],
            model_version=str(trained["model_version"]),
        )
    except IntervalError as error:
        exit_on_bad_settings(SettingsError(f"evaluate.interval_coverage: {error}"))
    folder = write(evaluation, settings)
    inputs = training_inputs(read_table(settings.path(TRAIN_FILE)), settings.data)
    write_parquet(inputs, settings.path(INPUTS_FILE))
    metrics = evaluation.metrics
    with mlflow.start_run(run_id=trained["run_id"]):
        mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items() if isinstance(v, float)})
        mlflow.log_metrics(evaluation.recent_metrics)
        for label, values in metrics.get("per_class", {}).items():
            mlflow.log_metrics({f"test_{k}_class_{label}": float(v) for k, v in values.items()})
        mlflow.log_artifacts(str(folder), artifact_path="plots")
        if evaluation.interval is not None:
            # The interval travels with the version: the package stage and the service read it.
            # On the run as tags, not params: a changed evaluate.interval_coverage re-runs
            # this stage alone on the same run, and MLflow refuses a param a new value.
            mlflow.set_tags(evaluation.interval.tags())
            for key, value in evaluation.interval.tags().items():
                client(settings).set_model_version_tag(
                    trained["model_name"], str(trained["model_version"]), key, value
                )
    for line in headline(evaluation, test, settings):
        print(line)


if __name__ == "__main__":
    main()
