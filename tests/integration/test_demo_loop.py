"""The demo's loop end to end, as ``make demo`` runs it, with real processes: ``dvc
repro`` (package stage included), ``bentoml serve``, replays with labels, three drift runs,
the retrain, the gate and the service's switch to the new champion, a fourth run; then the
drift report as a person sees it, rendered in headless Chromium."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.browser import chromium, headless
from tests.conftest import Project, make_project

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
ROWS = 2000  # each scenario whole, as `make demo` replays it


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, str]:
    # A project of its own, not the session's: the demo retrains and promotes (step 6),
    # which would move the champion every other serving test's server is built from.
    # And the whole training period, as `make demo` has, so the verdicts and the gate's
    # decision asserted below are the ones a user sees.
    raw = pd.read_parquet(ROOT / "data" / "raw" / "reference_2015.parquet")
    project = make_project(tmp_path_factory.mktemp("demo-project"), raw)
    port = free_port()

    def serve_here(params: dict[str, Any]) -> None:
        params["serving"]["port"] = port
        params["serving"]["workers"] = 1

    project.edit_params(serve_here)
    project.env["BENTOML_HOME"] = str(tmp_path_factory.mktemp("bentoml"))
    project.env["MLSTACK_DEMO_ROWS"] = str(ROWS)
    out = project.run("python", "-m", "mlstack.demo", check=False)
    log = project.root / ".demo" / "bentoml-serve.log"
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}\n--- server log ---\n" + (
        log.read_text()[-5000:] if log.exists() else "(none)"
    )
    return project, out.stdout


def summaries(project: Project) -> list[dict[str, Any]]:
    folder = project.root / "reports" / "drift"
    runs = sorted(p for p in folder.glob("*/summary.json"))
    return [json.loads(p.read_text()) for p in runs]


def test_demo_prints_the_expected_verdicts(demo: tuple[Project, str]) -> None:
    project, stdout = demo
    assert "production_2016" in stdout and "covariate_shift" in stdout
    for report in (project.root / "reports" / "drift").glob("*/report.html"):
        shown = report.relative_to(project.root).as_posix()
        assert shown in stdout, f"the verdict table (piped) cut the report path {shown}"
    stable, shifted, flipped, after = summaries(project)
    assert stable["rows"]["current"] == ROWS and stable["rows"]["labeled"] == ROWS
    assert stable["data_drift"]["detected"] is False
    assert stable["concept_drift"]["detected"] is False
    assert shifted["data_drift"]["detected"] is True
    drifted = {name for name, col in shifted["data_drift"]["columns"].items() if col["detected"]}
    assert drifted == {"AGEP", "MAR"}
    assert flipped["concept_drift"]["detected"] is True
    assert flipped["data_drift"]["detected"] is False
    # Step 6: retrained on the flipped traffic, promoted on recent rows, served without a
    # restart, and the model does better on the same kind of traffic than the old one did.
    promotion = json.loads((project.root / "reports" / "promotion.json").read_text())
    assert promotion["decision"] == "promoted" and promotion["judged_on"] == "recent"
    assert promotion["candidate_recent_score"] > promotion["champion_recent_score"]
    assert promotion["data"]["recent"]["labeled_rows"] == str(ROWS)
    assert after["model"]["version"] == promotion["candidate_version"]
    assert after["model"]["version"] != flipped["model"]["version"]
    assert after["rows"]["labeled"] == ROWS
    assert after["concept_drift"]["current"] > flipped["concept_drift"]["current"]


def test_demo_stops_its_server(demo: tuple[Project, str]) -> None:
    project, _ = demo
    port = project.settings.serving.port
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the demo left bentoml serve running"


def test_drift_report_renders_in_chromium(demo: tuple[Project, str], tmp_path: Path) -> None:
    """Evidently's report draws itself with JavaScript: a blank page would still hold the
    data as JSON, so the check is on the DOM after rendering, and the screenshot is kept."""
    browser = chromium()
    project, _ = demo
    report = sorted((project.root / "reports" / "drift").glob("*/report.html"))[1]
    flags = headless(tmp_path / "profile", "1400,2200")
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "drift_report.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={screenshot}", report.as_uri()],
        capture_output=True,
        timeout=120,
    )
    (ARTIFACTS / "drift_report.dom.html").write_text(dom)
    body = dom.split("<body", 1)[-1]
    rendered = body.split("<script", 1)[0]  # what was drawn, not the data the scripts carry
    assert "Drifted Columns" in rendered, "the drift summary is not drawn"
    assert "AGEP" in rendered and "MAR" in rendered, "the drift table is not drawn"
    assert screenshot.exists() and screenshot.stat().st_size > 20_000, "blank screenshot"
