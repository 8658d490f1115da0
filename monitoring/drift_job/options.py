"""What one run of the drift job reads and where it reports; the command line fills it in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass
class JobOptions:
    current: Path | None = None
    reference: Path | None = None
    since: datetime | None = None
    until: datetime | None = None
    pushgateway: str | None = None
    textfile: Path | None = None
    mlflow: bool = True
    workspace: bool = True
