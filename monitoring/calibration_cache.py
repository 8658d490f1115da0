"""Calibrations computed once per reference and window size, kept as JSON files.

A calibration (a column's distance under no drift, the domain classifier's band) depends
only on the reference rows, the window's size bucket and the settings that shape it, so a
drift job every 15 minutes computes it once and reads it after. The key is a digest of
all of those: another reference version, size bucket or setting is another file, and a
stale file is never read. A file that cannot be read is computed again, and a folder that
cannot be written costs only the time (the calibration is returned all the same).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

FORMAT = 1  # bumped when what a cached calibration holds changes
BUCKET_STEP = 2**0.25


def digest(frame: pd.DataFrame) -> str:
    """A digest of the rows and columns (names, dtypes, values) of a frame."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    header = json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode()
    return hashlib.sha256(header + hashed.tobytes()).hexdigest()[:32]


def size_bucket(rows: int) -> int:
    """The window sizes one calibration serves: powers of 2**(1/4) (a bucket's sizes differ
    by at most 19 %), named by the bucket's smallest size, the one calibrated at (fewer
    rows: more noise, so a threshold for the bucket errs towards fewer alarms)."""
    if rows < 1:
        raise ValueError(f"a window has at least one row, not {rows}")
    exponent = math.floor(math.log(rows, BUCKET_STEP) + 1e-9)
    return max(1, min(rows, math.floor(BUCKET_STEP**exponent)))


def cached(
    folder: Path | None,
    name: str,
    key: dict[str, Any],
    compute: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """``compute()``'s result for ``key``, from ``folder/<name>-<digest>.json`` when a run
    made it before; computed and written there (atomically) otherwise. ``folder=None``:
    always computed, nothing written."""
    if folder is None:
        return compute()
    stamp = hashlib.sha256(
        json.dumps({"format": FORMAT, **key}, sort_keys=True, default=str).encode()
    ).hexdigest()[:24]
    path = folder / f"{name}-{stamp}.json"
    try:
        return dict(json.loads(path.read_text())["value"])
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("calibration: recomputing unreadable %s: %s", path, error)
    value = compute()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as out:
            json.dump({"key": key, "value": value}, out, default=str)
        os.replace(out.name, path)
    except OSError as error:
        logger.warning("calibration: could not keep %s: %s", path, error)
    return value
