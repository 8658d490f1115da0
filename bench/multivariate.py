"""What the domain classifier (monitoring/multivariate.py) costs a drift run, cold and cached.

For each window size (2,000 and 100,000 rows by default) the current window is drawn from
the production years (``data/raw/production_2016_2018.parquet``, with replacement beyond
its rows) and judged against a reference of the 2015 rows the size of the test split
(17,197 rows):

- ``cold``: :func:`monitoring.multivariate.judge` with an empty cache folder, so the band
  (``drift.multivariate.chunks`` reference stretches, ``folds`` fits each) is computed;
- ``cached``: the same call again, the band read from the folder (one cross-validated
  fit on the window);
- baseline, in the same run: Evidently's ``DataDriftPreset`` on the same two frames
  (``Report.run``, ``Dataset.from_pandas`` included), the per-column work every drift run
  already does.

Times are wall-clock seconds of one call each, in this process. Prints Markdown.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bench.harness import ROOT, header, load_average, markdown, versions
from monitoring import multivariate
from pipeline.schema import coerce_features
from pipeline.settings import load_settings

SIZES = (2_000, 100_000)
REFERENCE_ROWS = 17_197  # the test split of the 2015 rows (params.yaml's test_size 0.25)


def frames(rows: int, settings: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reference and a current window of ``rows`` rows, features with plain dtypes."""
    raw = pd.read_parquet(ROOT / "data" / "raw" / "reference_2015.parquet")
    reference = raw.sample(REFERENCE_ROWS, random_state=settings.data.seed)
    production = pd.read_parquet(ROOT / "data" / "raw" / "production_2016_2018.parquet")
    current = production.sample(rows, replace=rows > len(production), random_state=1)
    return (
        coerce_features(reference, settings.data).reset_index(drop=True),
        coerce_features(current, settings.data).reset_index(drop=True),
    )


def timed(call: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call(*args)
    return time.perf_counter() - started, result


def evidently(reference: pd.DataFrame, current: pd.DataFrame) -> None:
    from evidently import Dataset, Report
    from evidently.presets import DataDriftPreset

    Report([DataDriftPreset()]).run(Dataset.from_pandas(current), Dataset.from_pandas(reference))


def run(sizes: list[int]) -> list[list[Any]]:
    settings = load_settings()
    rows = []
    for size in sizes:
        reference, current = frames(size, settings)
        with tempfile.TemporaryDirectory() as folder:
            cache = Path(folder)
            cold, judged = timed(multivariate.judge, reference, current, settings, cache)
            warm, again = timed(multivariate.judge, reference, current, settings, cache)
        assert again == judged, "the cached band gives the same verdict"
        baseline, _ = timed(evidently, reference, current)
        rows.append(
            [
                f"{size:,}",
                f"{cold:.1f}",
                f"{warm:.2f}",
                f"{baseline:.2f}",
                f"{judged.score:.3f}",
                f"{judged.threshold:.3f}",
                judged.detected,
                judged.rows,
                judged.band_rows,
                load_average(),
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    sizes = parser.parse_args().sizes
    settings = load_settings().drift.multivariate
    print(header("Domain classifier: judge() cold (band computed) and cached"))
    print(f"- {versions('scikit-learn', 'evidently')}")
    print(
        f"- reference {REFERENCE_ROWS:,} rows; max_rows {settings.max_rows}, folds "
        f"{settings.folds}, chunks {settings.chunks}\n"
    )
    print(
        markdown(
            [
                "window rows",
                "cold s",
                "cached s",
                "Evidently DataDriftPreset s (baseline)",
                "AUC",
                "threshold",
                "detected",
                "rows a side",
                "band stretch rows",
                "load after",
            ],
            run(sizes),
        )
    )


if __name__ == "__main__":
    main()
