"""Capture cost on the request path: ``CaptureWriter.add`` beside the model call it follows,
and the write-ahead format (Arrow record batches) beside the previous one (JSON lines).

``bench.serving`` measures capture end to end (setups a and b), but on a shared 2-core
machine its paired ratios move by several percent between runs. This measures the part
of capture a request waits for, directly and in one process: for batches of 1 to 256 real
production rows, the median time of

- ``model``: what the service does per batch before capture (``serving.scoring``'s scorer
  of the project's champion: the compiled input path when it verifies, as served);
- ``append``, each format: turning the scored batch into its write-ahead record and
  handing it to the OS in one ``write`` (JSON: ``wal.scored_line``; Arrow:
  ``frames.scored_record_batch`` and ``Segment.append``, framed), alternating in one loop;
- ``add``: the whole ``CaptureWriter.add`` of the batch to a real writer (a temporary
  folder), with its compaction thread running as in the service;
- ``compaction``, each format: recovering a segment of ``capture.flush_rows`` rows
  appended in batches of that size (a JSON-line segment as the previous version left
  it, a framed one as this version does) into Parquet: the writer thread's work, off the
  request path, but on the worker's CPU;
- and the Parquet write alone, with pyarrow's defaults against the log's options
  (``monitoring.capture.store._parquet_options``), interleaved on one segment's table.

``bench.serving``'s b/a ratio measures all of it end to end. Needs the champion in the
project's MLflow store (``dvc repro``). Prints Markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench.harness import ROOT, header, markdown, versions
from monitoring.capture import PREDICTIONS, CaptureWriter, ScoredBatch, Segment, storable_table
from monitoring.capture.frames import ARROW_MIN_ROWS, scored_record_batch
from monitoring.capture.schema import scored_columns
from monitoring.capture.store import _parquet_options
from monitoring.capture.wal import scored_line
from pipeline.labels import normalize_label
from pipeline.schema import proba_column
from pipeline.settings import load_settings
from pipeline.tracking import champion_uri, load_model, tracking_uri
from serving.scoring import prepare_scorer

# The write-ahead formats: JSON lines (before framing), record batches built from the rows'
# strings (framing before feature blocks), and record batches of the compiled path's blocks
# (numbers and category codes, this version's, as served).
FORMATS = ("json", "arrow", "blocks")


def timed(call: Any, repeats: int) -> float:
    """Median seconds of ``call()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def appends(
    folder: Path, batch: ScoredBatch, numerical: frozenset[str], repeats: int
) -> dict[str, float]:
    """Median seconds of one write-ahead append of ``batch`` in each format, alternating:
    the record made from the batch and written to a segment file in one ``write``."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "json.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    segment = Segment.create(folder, PREDICTIONS)
    columns = scored_columns(batch.feature_names, batch.proba_columns)

    def json_append() -> None:
        os.write(fd, scored_line(batch)[1])

    strings = dataclasses.replace(batch, blocks=None)

    def arrow_append() -> None:
        segment.append(columns, scored_record_batch(strings, numerical), len(batch))

    def blocks_append() -> None:
        segment.append(columns, scored_record_batch(batch, numerical), len(batch))

    calls = {"json": json_append, "arrow": arrow_append, "blocks": blocks_append}
    times: dict[str, list[float]] = {name: [] for name in calls}
    try:
        for _ in range(repeats):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    finally:
        os.close(fd)
        segment.remove()
    return {name: statistics.median(values) for name, values in times.items()}


def scored(rows: list[dict[str, Any]], scorer: Any, classes: list[str], name: str) -> ScoredBatch:
    probabilities, blocks = scorer.scored(rows, regressor=False)
    return ScoredBatch(
        timestamp=datetime.now(UTC),
        model_name=name,
        model_version="1",
        request_ids=[f"{i:032x}" for i in range(len(rows))],
        features=rows,
        predictions=[classes[i] for i in probabilities.argmax(axis=1)],
        probabilities=probabilities,
        proba_columns=[proba_column(c) for c in classes],
        blocks=blocks,
    )


def main() -> None:
    """Long because it is the benchmark's one table: each size's parts measured in turn."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,16,100,256", help="rows per batch")
    parser.add_argument("--repeats", type=int, default=300, help="calls per size and part")
    parser.add_argument("--compactions", type=int, default=7, help="segments per size and format")
    args = parser.parse_args()
    settings = load_settings(ROOT / "params.yaml")
    features = settings.data.features
    numerical = frozenset(features.numerical)
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
    print(f"- {args.repeats} calls per size and part, median per call; JSON lines (the")
    print("  first format), Arrow record batches of the rows' strings (the second) and of the")
    print("  compiled path's blocks (this one) in one run; add is the writer as served: record")
    print(f"  batches from {ARROW_MIN_ROWS} rows a call, framed JSON lines below\n")
    table = []
    flush_rows = settings.capture.flush_rows
    with tempfile.TemporaryDirectory(prefix="mlstack-bench-capture-") as folder:
        writer = CaptureWriter(
            Path(folder) / "capture",
            segments=Path(folder) / "segments",
            numerical=features.numerical,
            max_pending_rows=10_000_000,
            flush_rows=flush_rows,
            flush_seconds=settings.capture.flush_seconds,
        ).start()
        try:
            for size in (int(s) for s in args.sizes.split(",")):
                rows = rows_all[:size]
                batch = scored(rows, scorer, classes, settings.model.name)
                model_s = timed(lambda rows=rows: scorer.scored(rows, False), args.repeats)
                append = appends(Path(folder) / f"append-{size}", batch, numerical, args.repeats)
                add_s = timed(lambda b=batch: writer.add(PREDICTIONS, b), args.repeats)
                compact = compaction(
                    Path(folder) / f"compact-{size}", batch, settings, args.compactions
                )
                table.append(
                    [
                        size,
                        f"{model_s * 1e3:.2f}",
                        " → ".join(f"{append[f] * 1e6:.1f}" for f in FORMATS),
                        " → ".join(f"{append[f] * 1e6 / size:.2f}" for f in FORMATS),
                        f"{add_s * 1e6:.1f} ({add_s / model_s:.1%})",
                        " → ".join(f"{compact[f] * 1e3:.1f}" for f in FORMATS),
                        " → ".join(f"{compact[f] * 1e6 / flush_rows:.2f}" for f in FORMATS),
                    ]
                )
        finally:
            writer.close()
    columns = [
        "rows per call",
        "model ms",
        "append µs, JSON → Arrow strings → blocks",
        "append µs per row",
        "add µs (/ model)",
        f"compaction ms per {flush_rows:,} rows, JSON → strings → blocks",
        "compaction µs per row",
    ]
    print(markdown(columns, table))
    whole = scored(rows_all[:flush_rows], scorer, classes, settings.model.name)
    print(f"\nParquet write of one compacted segment ({len(whole):,} production rows, the")
    print("champion's scores), pyarrow's defaults against the log's options, interleaved:\n")
    print(markdown(["options", "write ms", "bytes"], parquet_options(whole, numerical)))
    print("\nOne record batch appended to a file, already built: framed (length + CRC-32, one")
    print("`write`, as segments are) against `pa.ipc.new_stream` writing it, interleaved:\n")
    sizes = [int(s) for s in args.sizes.split(",")]
    framed = [
        framing(
            Path(tempfile.mkdtemp(prefix="mlstack-bench-framing-")),
            scored(rows_all[:n], scorer, classes, "m"),
            numerical,
        )
        for n in sizes
    ]
    rows = [
        [n, f"{f['framed'] * 1e6:.1f}", f"{f['stream'] * 1e6:.1f}"]
        for n, f in zip(sizes, framed, strict=True)
    ]
    print(markdown(["rows per call", "framed µs", "IPC stream writer µs"], rows))


def framing(
    folder: Path, batch: ScoredBatch, numerical: frozenset[str], repeats: int = 2000
) -> dict[str, float]:
    """Median seconds to append one built record batch: as a segment frames it, and with
    Arrow's IPC stream writer on an unbuffered file, alternating."""
    record = scored_record_batch(batch, numerical)
    segment = Segment.create(folder, PREDICTIONS)
    columns = scored_columns(batch.feature_names, batch.proba_columns)
    sink = open(folder / "stream.arrows", "wb", buffering=0)  # noqa: SIM115 - closed below
    stream = pa.ipc.new_stream(sink, record.schema)
    calls = {
        "framed": lambda: segment.append(columns, record, record.num_rows),
        "stream": lambda: stream.write_batch(record),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    try:
        for _ in range(repeats):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    finally:
        stream.close()
        sink.close()
        segment.remove()
        shutil.rmtree(folder, ignore_errors=True)
    return {name: statistics.median(values) for name, values in times.items()}


def parquet_options(
    batch: ScoredBatch, numerical: frozenset[str], repeats: int = 50
) -> list[list[Any]]:
    """Median time and size of ``pq.write_table`` on one segment's table, with pyarrow's
    defaults and with the options the capture log writes with, alternating in one loop."""
    table = storable_table(pa.Table.from_batches([scored_record_batch(batch, numerical)]))
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


def compaction(folder: Path, batch: ScoredBatch, settings: Any, repeats: int) -> dict[str, float]:
    """Median seconds, per format, to recover a segment of ``capture.flush_rows`` rows (what
    one compaction holds under load) appended as ``batch`` over and over (one record per
    model call), into Parquet in ``folder``, the formats alternating: the writer thread's
    work, off the request path but on the worker's CPU. A JSON-line segment is left as the
    previous version appended it, a framed one of record batches by this version's writer
    (``arrow_min_rows=0``), both as a killed process leaves them."""
    numerical = settings.data.features.numerical
    segments = folder / "segments"
    count = -(-settings.capture.flush_rows // len(batch))
    times: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
    for _ in range(repeats):
        for fmt in FORMATS:
            if fmt == "json":
                segments.mkdir(parents=True, exist_ok=True)
                line = scored_line(batch)[1]
                (segments / f"{PREDICTIONS}-{uuid.uuid4().hex}.jsonl").write_bytes(line * count)
            else:
                dead = CaptureWriter(
                    folder, segments=segments, numerical=numerical, arrow_min_rows=0
                )
                written = batch if fmt == "blocks" else dataclasses.replace(batch, blocks=None)
                for _ in range(count):
                    dead.add(PREDICTIONS, written)
                dead._open[PREDICTIONS].release()  # type: ignore[union-attr]  # as a crash
            recovering = CaptureWriter(folder, segments=segments, numerical=numerical)
            start = time.perf_counter()
            rows = recovering.recover()
            times[fmt].append(time.perf_counter() - start)
            assert rows == count * len(batch), (rows, count * len(batch))
            recovering.close()
    return {fmt: statistics.median(values) for fmt, values in times.items()}


if __name__ == "__main__":
    main()
