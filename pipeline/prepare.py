"""Stage 1, prepare: load the raw training-period data, validate it, split train/test.

The checks fail early with the column named (see ``pipeline.schema.validate``), so a bad
file stops the pipeline here rather than as a cryptic error inside scikit-learn.
"""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

from pipeline.io import read_table, write_parquet
from pipeline.paths import TEST_FILE, TRAIN_FILE
from pipeline.schema import validate
from pipeline.settings import DataSettings, load_settings_or_exit


def prepare(raw: pd.DataFrame, data: DataSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validated, reproducible train and test frames: id (if any), features, target."""
    frame = validate(raw.drop(columns=[c for c in data.drop if c in raw.columns]), data)
    keep = [c for c in (data.id, data.timestamp) if c is not None]
    missing = [c for c in keep if c not in raw.columns]
    if missing:
        raise ValueError(f"missing id/timestamp column(s): {', '.join(missing)}")
    frame = pd.concat([raw[keep], frame], axis=1)
    stratify = frame[data.target] if data.split.stratify else None
    train, test = train_test_split(
        frame, test_size=data.split.test_size, random_state=data.seed, stratify=stratify
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)


def main() -> None:
    settings = load_settings_or_exit()
    raw = read_table(settings.path(settings.data.path))
    train, test = prepare(raw, settings.data)
    write_parquet(train, settings.path(TRAIN_FILE))
    write_parquet(test, settings.path(TEST_FILE))
    print(f"prepare: {len(train)} train rows, {len(test)} test rows")


if __name__ == "__main__":
    main()
