"""``serving.reject_unknown_categories: false``: an unseen category is served, not refused.

The shipped setting refuses it with 400 (tests/integration/test_service_api.py); a user who
would rather serve such rows turns it off, and the one-hot encoder then scores the unseen
code as "none of the known ones". The answer must be the champion's own, and the row must
reach the capture log with the code as sent, so the drift job sees the new category.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from serving_harness import Champion, Server, start_server

from monitoring.capture import read_window
from pipeline.labels import normalize_label
from serving.service import EXAMPLE_INPUT

pytestmark = pytest.mark.integration

ROW: dict[str, Any] = EXAMPLE_INPUT["instances"][0]
UNSEEN = {**ROW, "SCHL": "99"}  # no such education code in the training data


def served_total(server: Server) -> float:
    """Predictions the server has counted on /metrics, over all its series."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    lines = [x for x in text.splitlines() if x.startswith("mlstack_predictions_total{")]
    return sum(float(x.rsplit(" ", 1)[1]) for x in lines)


def test_an_unseen_category_is_scored_as_the_champion_scores_it_and_captured(
    tmp_path: Path, base_env: dict[str, str], server: Server, champion: Champion
) -> None:
    from pipeline.tracking import load_model

    session_server, before = server, served_total(server)
    server = start_server(tmp_path, base_env, serving={"reject_unknown_categories": False})
    try:
        answer = httpx.post(f"{server.url}/predict", json={"instances": [UNSEEN, ROW]}, timeout=60)
        assert answer.status_code == 200, answer.text
        bad = httpx.post(f"{server.url}/predict", json={"instances": [{**ROW, "SCHL": 4.5}]})
        assert bad.status_code == 400, "other validation still applies"
        assert server.stop() == 0
    finally:
        server.stop()

    model = load_model(f"models:/{champion.name}@champion", champion.tracking_uri)
    numerical = server.settings.data.features.numerical
    frame = pd.DataFrame([UNSEEN, ROW]).astype({c: "float64" for c in numerical})
    classes = [normalize_label(c) for c in model.classes_]
    served = answer.json()["predictions"]
    got = np.array([[p["probabilities"][c] for c in classes] for p in served])
    np.testing.assert_allclose(got, model.predict_proba(frame), rtol=0, atol=1e-12)
    assert got[0].tolist() != got[1].tolist(), "the unseen code must change the input"

    window = read_window(server.capture, server.settings)
    assert window["request_id"].tolist() == [p["request_id"] for p in served]
    assert window["SCHL"].tolist() == ["99", ROW["SCHL"]]

    # Two servers from one BentoML store: the session's server still counts on /metrics
    # (bentoml serve empties its home's metrics folder at start; each has its own home).
    httpx.post(f"{session_server.url}/predict", json={"instances": [ROW]}, timeout=60)
    assert served_total(session_server) == before + 1
