"""Where a model came from: the git revision and the DVC pipeline state that trained it."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from pipeline.paths import DVC_LOCK


def git_revision(root: Path) -> str:
    """The commit in ``root``, ``-dirty`` when tracked files differ; "unknown" outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def dvc_lock_digest(root: Path) -> str:
    """SHA-256 of ``dvc.lock`` as it was when the stage started ("none" before the first run)."""
    lock = root / DVC_LOCK
    return hashlib.sha256(lock.read_bytes()).hexdigest() if lock.exists() else "none"


def lineage_tags(root: Path) -> dict[str, str]:
    return {"git_revision": git_revision(root), "dvc_lock_sha256": dvc_lock_digest(root)}


# The Parquet schema metadata key under which `mlstack retrain` records where the recent
# rows came from (capture window, rows read, labeled rows, when), so the file carries its
# own lineage into every stage that reads it.
RECENT_LINEAGE_KEY = b"mlstack.lineage"


def recent_lineage(path: Path) -> dict[str, str]:
    """Tags for the training run: the recent rows' MD5 (as dvc.lock records it), row count
    and the lineage ``mlstack retrain`` wrote into the file; ``retrain.rows`` 0 before any."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    tags = {
        "retrain.data": str(path.name),
        "retrain.data_md5": hashlib.md5(path.read_bytes()).hexdigest(),
        "retrain.rows": str(pq.read_metadata(path).num_rows),
    }
    raw = metadata.get(RECENT_LINEAGE_KEY)
    if raw is not None:
        tags.update({f"retrain.{key}": str(value) for key, value in json.loads(raw).items()})
    return tags
