"""NannyML's univariate drift with its defaults, run in this folder's environment.

    UV_PROJECT_ENVIRONMENT=.bench/nannyml-venv \
    uv run --locked --project bench/nannyml python bench/nannyml/univariate.py \
        REFERENCE.parquet WINDOWS.parquet SIZE COLUMNS.json OUT.json

``UnivariateDriftCalculator`` with its default methods (Jensen-Shannon for continuous and
categorical columns) and thresholds (reference chunks' mean + 3 standard deviations),
chunked by SIZE rows, is fitted on the reference and run on WINDOWS: windows of SIZE rows
each, one after another, so each chunk is one window. COLUMNS.json holds
``{"numerical": [...], "categorical": [...]}``. OUT.json gets one object per window:
``{column: alert}``. Kept to what NannyML itself does; bench/detection.py does the counting.
"""

from __future__ import annotations

import json
import sys
import warnings

import nannyml as nml
import pandas as pd


def main(argv: list[str]) -> None:
    reference_path, windows_path, size_text, columns_path, out_path = argv
    size = int(size_text)
    with open(columns_path) as file:
        columns = json.load(file)
    numerical, categorical = columns["numerical"], columns["categorical"]
    reference = pd.read_parquet(reference_path)
    windows = pd.read_parquet(windows_path)
    if len(windows) % size:
        raise SystemExit(f"{windows_path}: {len(windows)} rows is not a whole number of windows")
    calculator = nml.UnivariateDriftCalculator(
        column_names=[*numerical, *categorical],
        treat_as_numerical=numerical or None,
        treat_as_categorical=categorical or None,
        chunk_size=size,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calculator.fit(reference)
        table = calculator.calculate(windows).filter(period="analysis").to_df()
    alerts = []
    for _, row in table.iterrows():
        alerts.append(
            {c: bool(row[(c, "jensen_shannon", "alert")]) for c in [*numerical, *categorical]}
        )
    if len(alerts) != len(windows) // size:
        raise SystemExit(f"NannyML made {len(alerts)} chunks of {len(windows) // size} windows")
    with open(out_path, "w") as file:
        json.dump(alerts, file)


if __name__ == "__main__":
    main(sys.argv[1:])
