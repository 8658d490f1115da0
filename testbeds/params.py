"""A project's params.yaml for a test or a benchmark, written into its own folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline.settings import PROJECT_ROOT


def write_params(folder: Path, base: Path | None = None, **sections: dict[str, Any]) -> Path:
    """The project's params.yaml (or ``base``) with ``sections`` merged over, one level deep
    (``data={"path": ...}`` keeps the other ``data`` keys), in ``folder``."""
    raw = yaml.safe_load((base or PROJECT_ROOT / "params.yaml").read_text())
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
