"""Stage 1, prepare: load the raw training-period data, validate it, split train/test, and
fold in the recent labeled production rows ``mlstack retrain`` took from the capture log.

The checks fail early with the column named (see ``pipeline.schema.validate``), so a bad
file stops the pipeline here rather than as a cryptic error inside scikit-learn.

Recent rows (``data/retrain/recent.parquet``, empty until the first retrain) are split
too: ``retrain.holdout`` of them go to ``data/prepared/recent_holdout.parquet``, which only
the gate reads; the rest train beside ``retrain.reference_rows`` rows sampled from the
original training split. The original test split stays as it was, so the gate still
checks the candidate against the period it was first judged on.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import pandas as pd
from sklearn.model_selection import train_test_split

from pipeline.io import read_table, write_parquet
from pipeline.paths import RECENT_FILE, RECENT_HOLDOUT_FILE, TEST_FILE, TRAIN_FILE
from pipeline.schema import SchemaError, validate
from pipeline.settings import (
    EXIT_BAD_SETTINGS,
    DataSettings,
    RetrainSettings,
    load_settings_or_exit,
)


def _keyed(raw: pd.DataFrame, data: DataSettings) -> pd.DataFrame:
    """Validated features and target, with the id and timestamp columns (if any) in front."""
    frame = validate(raw.drop(columns=[c for c in data.drop if c in raw.columns]), data)
    keep = [c for c in (data.id, data.timestamp) if c is not None]
    missing = [c for c in keep if c not in raw.columns]
    if missing:
        raise ValueError(f"missing id/timestamp column(s): {', '.join(missing)}")
    return pd.concat([raw[keep], frame], axis=1)


def _split(
    frame: pd.DataFrame, test_size: float, data: DataSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    labels = frame[data.target]
    stratify = labels if data.split.stratify and labels.value_counts().min() >= 2 else None
    train, test = train_test_split(
        frame, test_size=test_size, random_state=data.seed, stratify=stratify
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)


def prepare(raw: pd.DataFrame, data: DataSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validated, reproducible train and test frames: id (if any), features, target."""
    return _split(_keyed(raw, data), data.split.test_size, data)


def with_recent(
    train: pd.DataFrame, recent: pd.DataFrame, data: DataSettings, retrain: RetrainSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training frame with the recent rows folded in, and the recent rows held out.

    Without recent rows both come back as they are (and an empty holdout): a plain
    ``dvc repro`` trains on the training period alone, as before any retrain.
    """
    if recent.empty:
        return train, pd.DataFrame(columns=[*data.features.all, data.target])
    rows = validate(recent, data)
    fitted, holdout = _split(rows, retrain.holdout, data)
    kept = train.sample(n=min(retrain.reference_rows, len(train)), random_state=data.seed)
    kept = kept[[*data.features.all, data.target]]
    combined = pd.concat([kept, fitted], ignore_index=True)
    return combined.reset_index(drop=True), holdout


def _bad_data(where: str, error: SchemaError) -> NoReturn:
    """Bad data is no bug: one line naming the file, the column and a value; exit 2."""
    print(f"prepare: {where}: {error}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_SETTINGS)


def main() -> None:
    settings = load_settings_or_exit()
    raw = read_table(settings.path(settings.data.path))
    recent = read_table(settings.path(RECENT_FILE))
    try:
        train, test = prepare(raw, settings.data)
    except SchemaError as error:
        _bad_data(settings.data.path, error)
    try:
        train, holdout = with_recent(train, recent, settings.data, settings.retrain)
    except SchemaError as error:
        _bad_data(RECENT_FILE, error)
    write_parquet(train, settings.path(TRAIN_FILE))
    write_parquet(test, settings.path(TEST_FILE))
    write_parquet(holdout, settings.path(RECENT_HOLDOUT_FILE))
    print(
        f"prepare: {len(train)} train rows ({len(recent) - len(holdout) if len(recent) else 0} "
        f"recent), {len(test)} test rows, {len(holdout)} recent rows held out for the gate"
    )


if __name__ == "__main__":
    main()
