"""Reading and writing tables and small JSON reports, by file extension.

``write_json`` is the project's one JSON file writer: stages, commands and the drift job
write reports, summaries and state through it, so a reader never sees half a file and a
failed write leaves the previous file as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd


def read_table(path: Path) -> pd.DataFrame:
    """A Parquet or CSV file as a frame; any other extension is an error naming the file."""
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path)
    raise ValueError(f"{path}: unsupported file type {suffix!r}, expected .parquet or .csv")


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def write_json(payload: dict[str, Any], path: Path) -> None:
    """Write ``payload`` as JSON atomically: a temporary file in the same folder, flushed to
    disk, then renamed over ``path``.

    The payload is serialised before anything is opened, so a value JSON cannot encode
    raises here and leaves the previous file (and no temporary) behind; a crash mid-write
    leaves at most a stray ``.<name>.*.tmp``, never a truncated ``path``.
    """
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        # mkstemp makes the file private (0600); a report is as readable as write_text's.
        os.fchmod(descriptor, 0o644)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(path.read_text())
    return payload
