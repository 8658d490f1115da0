"""Stage 2, train: fit the model inside an MLflow run and register a new version.

The run records the hyperparameters, the training data as an MLflow dataset input, the
model (skops, reviewed trusted types, with signature and input example) and lineage tags
(git revision, dvc.lock digest, and the recent production rows' capture window, counts and
MD5 after ``mlstack retrain``). ``reports/train.json`` hands the run and version to the
stages that follow.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
from sklearn.base import is_regressor
from sklearn.pipeline import Pipeline

from pipeline.io import read_table, write_json
from pipeline.lineage import lineage_tags, recent_lineage
from pipeline.model import build_model
from pipeline.paths import RECENT_FILE, TRAIN_FILE, TRAIN_REPORT
from pipeline.settings import Features, Settings, TrainSettings, load_settings_or_exit
from pipeline.tasks import Task
from pipeline.tracking import configure, log_skops_model


def train(
    X: pd.DataFrame,
    y: pd.Series,
    features: Features,
    settings: TrainSettings,
    seed: int,
    task: Task = "classification",
) -> Pipeline:
    """Fit the factory's pipeline (the classifier or the regressor of ``task``) on ``X``, ``y``."""
    return build_model(features, settings, seed, task).fit(X[features.all], y)


def requirements() -> list[str]:
    """What the model needs to load, pinned to this environment (skips MLflow's slow inference)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("scikit-learn", "skops", "pandas", "numpy")]


@contextmanager
def harmless() -> Iterator[None]:
    """Two MLflow warnings about nothing this run does wrong, silenced here only:
    MLflow registers its local dataset source under both the "" and "file" schemes, so
    every local path is "ambiguous" between two identical classes; and the training
    frame's integer id column draws a hint meant for model signatures (the signature
    holds the features only: floats and strings)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
        warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer column")
        yield


def log_and_register(model: Pipeline, frame: pd.DataFrame, settings: Settings) -> dict[str, str]:
    """Log ``model`` in an MLflow run and register it; returns what the next stages need."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature

    configure(settings)
    features = settings.data.features.all
    X = frame[features]
    with mlflow.start_run(run_name=f"train-{settings.train.estimator}") as run, harmless():
        mlflow.set_tags({**lineage_tags(settings.root), "stage": "train"})
        # Which production rows (if any) this model learned from: `mlstack retrain`'s file.
        mlflow.set_tags(recent_lineage(settings.path(RECENT_FILE)))
        mlflow.log_params({"estimator": settings.train.estimator, "seed": settings.data.seed})
        mlflow.log_params(
            {
                f"{settings.train.estimator}.{k}": v
                for k, v in settings.train.hyperparameters().items()
            }
        )
        dataset = from_pandas(
            frame, source=str(settings.path(TRAIN_FILE)), targets=settings.data.target, name="train"
        )
        mlflow.log_input(dataset, context="training")
        example = X.head(5)
        regressor = is_regressor(model)
        outputs = model.predict(example) if regressor else model.predict_proba(example)
        signature = infer_signature(example, outputs)
        info = log_skops_model(
            model,
            settings.model.name,
            requirements(),
            signature=signature,
            input_example=example,
        )
    version = str(info.registered_model_version)
    return {
        "model_name": settings.model.name,
        "model_version": version,
        "model_uri": f"models:/{settings.model.name}/{version}",
        "run_id": run.info.run_id,
        "classes": [] if regressor else [str(c) for c in model.classes_],
    }


def main() -> None:
    settings = load_settings_or_exit()
    frame = read_table(settings.path(TRAIN_FILE))
    model = train(
        frame,
        frame[settings.data.target],
        settings.data.features,
        settings.train,
        settings.data.seed,
        settings.data.task,
    )
    report = log_and_register(model, frame, settings)
    write_json(report, settings.path(TRAIN_REPORT))
    print(f"train: registered {report['model_uri']} (run {report['run_id']})")


if __name__ == "__main__":
    main()
