"""Baseline (c): the server most people write first, FastAPI and uvicorn around the model.

One ``predict_proba`` per request on a pandas frame of that request's rows (one row for
one-row clients); no batching across requests, no validation beyond the JSON, no
metrics, no capture. The champion comes from the project's MLflow registry, the same
model the mlstack service serves. Started by ``bench/serving.py`` as
``uvicorn bench.naive_server:app --workers N``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pandas as pd
from fastapi import FastAPI

STATE: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    from pipeline.settings import load_settings
    from pipeline.tracking import champion_uri, load_model, tracking_uri

    settings = load_settings()
    STATE["model"] = load_model(champion_uri(settings), tracking_uri(settings))
    STATE["columns"] = settings.data.features.all
    STATE["numerical"] = settings.data.features.numerical
    STATE["classes"] = [str(c) for c in STATE["model"].classes_]
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/readyz")
def ready() -> dict[str, bool]:
    return {"ready": "model" in STATE}


@app.post("/predict")
def predict(body: dict[str, Any]) -> dict[str, Any]:
    """Sync handler: FastAPI runs it in its thread pool, one request per model call."""
    frame = pd.DataFrame.from_records(body["instances"], columns=STATE["columns"])
    for column in STATE["numerical"]:
        frame[column] = frame[column].astype("float64")
    probabilities = STATE["model"].predict_proba(frame)
    classes = STATE["classes"]
    return {
        "predictions": [
            {
                "label": classes[int(p.argmax())],
                "probabilities": dict(zip(classes, p.tolist(), strict=True)),
            }
            for p in probabilities
        ]
    }
