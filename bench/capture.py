"""Capture cost on the request path: ``CaptureWriter.add`` beside the model call it follows.

``bench.serving`` measures capture end to end (setups a and b), but on a shared 2-core
machine its paired ratios move by several percent between runs. This measures the part
of capture a request waits for, directly and in one process: for batches of 1 to 256 real
production rows, the median time of

- ``model``: what the service does per batch before capture (``serving.scoring``'s scorer
  of the project's champion: the compiled input path when it verifies, as served);
- ``capture``: ``CaptureWriter.add`` of the scored batch to a real writer (one JSON
  line appended to its write-ahead segment, in a temporary folder), with its compaction
  thread running as in the service;
- ``compaction``: the writer thread's work for one segment of ``capture.flush_rows`` rows
  appended in batches of that size, into Parquet: off the request path, but on the
  worker's CPU;
- and the Parquet write alone, with pyarrow's defaults against the log's options
  (``monitoring.capture.store._parquet_options``), interleaved on one segment's table.

``bench.serving``'s b/a ratio measures all of it end to end. Needs the champion in the
project's MLflow store (``dvc repro``). Prints Markdown.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from bench.harness import ROOT, header, markdown, versions
from monitoring.capture import (
    PREDICTIONS,
    CaptureWriter,
    ScoredBatch,
    scored_line,
    scored_lines_table,
    storable_table,
)
from monitoring.capture.store import _parquet_options
from pipeline.labels import normalize_label
from pipeline.schema import proba_column
from pipeline.settings import load_settings
from pipeline.tracking import champion_uri, load_model, tracking_uri
from serving.scoring import prepare_scorer


def timed(call: Any, repeats: int) -> float:
    """Median seconds of ``call()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,16,100,256", help="rows per batch")
    parser.add_argument("--repeats", type=int, default=300, help="calls per size and part")
    args = parser.parse_args()
    settings = load_settings(ROOT / "params.yaml")
    features = settings.data.features
    model = load_model(champion_uri(settings), tracking_uri(settings))
    classes = [normalize_label(c) for c in model.classes_]
    scorer = prepare_scorer(model, settings)
    rows_all: list[dict[str, Any]] = (
        pd.read_parquet(ROOT / "data/raw/production_2016_2018.parquet", columns=features.all)
        .head(5000)
        .astype(object)
        .where(lambda f: f.notna(), None)
        .to_dict("records")  # type: ignore[assignment]
    )
    print(header("Capture: the write-ahead append a request waits for, beside its model call"))
    print(f"- versions: {versions('pyarrow', 'scikit-learn', 'pandas')}")
    print(f"- scorer: {'compiled input path' if scorer.compiled else scorer.reason}")
    print(f"- {args.repeats} calls per size and part, median per call\n")
    table = []
    with tempfile.TemporaryDirectory(prefix="mlstack-bench-capture-") as folder:
        writer = CaptureWriter(
            Path(folder) / "capture",
            segments=Path(folder) / "segments",
            numerical=features.numerical,
            max_pending_rows=10_000_000,
            flush_rows=settings.capture.flush_rows,
            flush_seconds=settings.capture.flush_seconds,
        ).start()
        try:
            for size in (int(s) for s in args.sizes.split(",")):
                rows = rows_all[:size]

                def score(rows: list[dict[str, Any]] = rows) -> np.ndarray:
                    return scorer.predict_proba(rows)

                probabilities = score()
                batch = ScoredBatch(
                    timestamp=datetime.now(UTC),
                    model_name=settings.model.name,
                    model_version="1",
                    request_ids=[f"{i:032x}" for i in range(size)],
                    features=rows,
                    predictions=[classes[i] for i in probabilities.argmax(axis=1)],
                    probabilities=probabilities,
                    proba_columns=[proba_column(c) for c in classes],
                )
                model_s = timed(score, args.repeats)
                capture_s = timed(lambda b=batch: writer.add(PREDICTIONS, b), args.repeats)
                compact_s = compaction(Path(folder) / f"compact-{size}", batch, settings)
                table.append(
                    [
                        size,
                        f"{model_s * 1e3:.2f}",
                        f"{capture_s * 1e3:.3f}",
                        f"{capture_s / model_s:.1%}",
                        f"{compact_s * 1e3:.1f}",
                    ]
                )
        finally:
            writer.close()
    columns = ["rows per call", "model ms", "capture ms", "capture / model"]
    compacted = f"compaction ms per {settings.capture.flush_rows:,} rows"
    print(markdown([*columns, compacted], table))
    segment = rows_all[: settings.capture.flush_rows]
    probabilities = scorer.predict_proba(segment)
    whole = ScoredBatch(
        timestamp=datetime.now(UTC),
        model_name=settings.model.name,
        model_version="1",
        request_ids=[f"{i:032x}" for i in range(len(segment))],
        features=segment,
        predictions=[classes[i] for i in probabilities.argmax(axis=1)],
        probabilities=probabilities,
        proba_columns=[proba_column(c) for c in classes],
    )
    print(f"\nParquet write of one compacted segment ({len(segment):,} production rows, the")
    print("champion's scores), pyarrow's defaults against the log's options, interleaved:\n")
    print(markdown(["options", "write ms", "bytes"], parquet_options(whole, settings)))


def parquet_options(batch: ScoredBatch, settings: Any, repeats: int = 50) -> list[list[Any]]:
    """Median time and size of ``pq.write_table`` on one segment's table, with pyarrow's
    defaults and with the options the capture log writes with, alternating in one loop."""
    columns, line = scored_line(batch)
    numerical = frozenset(settings.data.features.numerical)
    table = storable_table(scored_lines_table(line, columns, numerical))
    options = {"pyarrow's defaults": {}, "the log's": _parquet_options(table.column_names)}
    times: dict[str, list[float]] = {name: [] for name in options}
    sizes: dict[str, int] = {}
    for _ in range(repeats):
        for name, kwargs in options.items():
            sink = io.BytesIO()
            start = time.perf_counter()
            pq.write_table(table, sink, **kwargs)
            times[name].append(time.perf_counter() - start)
            sizes[name] = sink.tell()
    return [
        [name, f"{statistics.median(times[name]) * 1e3:.2f}", f"{sizes[name]:,}"]
        for name in options
    ]


def compaction(folder: Path, batch: ScoredBatch, settings: Any, repeats: int = 5) -> float:
    """Median seconds to compact a segment of ``capture.flush_rows`` rows (what one
    compaction holds under load) appended as ``batch`` over and over (one line per model
    call), into Parquet in ``folder``: the writer thread's work, off the request path but
    on the worker's CPU."""
    times = []
    for _ in range(repeats):
        writer = CaptureWriter(
            folder,
            segments=folder / "segments",
            numerical=settings.data.features.numerical,
            max_pending_rows=10_000_000,
        )
        for _ in range(-(-settings.capture.flush_rows // len(batch))):
            writer.add(PREDICTIONS, batch)
        start = time.perf_counter()
        writer.flush()
        times.append(time.perf_counter() - start)
        writer.close()
    return statistics.median(times)


if __name__ == "__main__":
    main()
