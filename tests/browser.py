"""Debian's Chromium, headless, as the page tests run it on this closed network."""

from __future__ import annotations

import shutil
from pathlib import Path


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Debian's chromium is needed (make system-deps installs it)"
    return found


def headless(profile: Path, size: str) -> list[str]:
    """Headless flags with a fresh profile and a window of ``size`` ("width,height"); no
    background networking (its connections are refused here, many at a time), and time
    for the page's own scripts to draw."""
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
        f"--window-size={size}",
    ]
