"""Baseline (d): a BentoML endpoint that answers without a model, the stack's HTTP ceiling.

Same framework, worker count, host and access-log setting as the mlstack service (read
from ``params.yaml`` when the module is imported, as the service does); the body is
parsed as plain JSON (no schema validation) and the answer has the service's shape, one
fixed prediction per instance. Nothing the mlstack service does can be faster than this.
``bench/serving.py`` starts it as ``bentoml serve bench.constant_service:Constant``.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml

from pipeline.settings import load_settings

SERVING = load_settings(os.environ.get("MLSTACK_PARAMS") or None).serving
WORKERS = int(os.environ.get("MLSTACK_WORKERS") or SERVING.workers)
PREDICTION = {"request_id": "0" * 32, "label": "1", "probabilities": {"0": 0.1, "1": 0.9}}
MODEL = {"name": "constant", "version": "0"}


@bentoml.service(
    name="mlstack-constant",
    workers=WORKERS,
    http={"host": "127.0.0.1", "port": 3000},
    traffic={"timeout": 60},
    logging={"access": {"enabled": getattr(SERVING, "access_log", True)}},
)
class Constant:
    """Answers every ``/predict`` with the same prediction per instance."""

    @bentoml.api(route="/predict")  # type: ignore[untyped-decorator]
    async def predict(self, instances: list[dict[str, Any]]) -> dict[str, Any]:
        return {"model": MODEL, "predictions": [PREDICTION] * len(instances)}
