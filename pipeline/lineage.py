"""Where a model came from: the git revision and the DVC pipeline state that trained it."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path


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
    lock = root / "dvc.lock"
    return hashlib.sha256(lock.read_bytes()).hexdigest() if lock.exists() else "none"


def lineage_tags(root: Path) -> dict[str, str]:
    return {"git_revision": git_revision(root), "dvc_lock_sha256": dvc_lock_digest(root)}
