"""Test-wide setup: no telemetry, and nothing written outside temporary folders."""

from __future__ import annotations

import os

from pipeline.tracking import TELEMETRY_OFF

for _key, _value in TELEMETRY_OFF.items():
    os.environ[_key] = _value
