"""The operator's page in a real browser: headless Chromium renders each case's
``report.html`` at a desktop and a phone width with every host name unresolvable
(``--host-resolver-rules``), and its network log shows no request leaving the machine.

The DOM after rendering (scripts run) must show the status of ``summary.json``, the
history plot with its numbers and the drift-score plot; the screenshots are kept in
``test-artifacts/drift_page/`` (the ones in ``docs/screenshots`` were taken from them).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipeline.settings import PROJECT_ROOT
from tests import browser
from tests.monitoring.conftest import CASES, DriftData, run_cases

pytestmark = pytest.mark.slow

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "drift_page"
WIDTHS = {"desktop": "1280,1000", "phone": "390,1400"}
EXTERNAL = re.compile(
    r"""(?:\b(?:src|href|action|poster)\s*=\s*["']?\s*|url\(\s*["']?\s*)(?:https?:)?//""",
    re.I,
)


@pytest.fixture(scope="module")
def chromium() -> str:
    return browser.chromium()


@pytest.fixture(scope="module")
def runs(
    drift_data: DriftData, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[dict[str, Any], Path]]:
    """Each case's ``summary.json`` and ``report.html``, run one after the other."""
    return run_cases(drift_data, tmp_path_factory.mktemp("browser-project"))


def render(chromium: str, page: Path, size: str, work: Path, shot: Path) -> tuple[str, str]:
    """The DOM after the page's scripts ran, and Chromium's network log, at ``size``."""
    flags = [
        *browser.headless(work / "profile", size),
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--hide-scrollbars",
    ]
    netlog = work / "netlog.json"
    dom = subprocess.run(
        [chromium, *flags, f"--log-net-log={netlog}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    subprocess.run(
        [chromium, *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120
    )
    return dom, netlog.read_text() if netlog.exists() else ""


def markup(html: str) -> str:
    """The page without its scripts' bodies (``<script src=...>`` tags kept): Evidently's
    inline Plotly bundle holds ``href="https://plotly.com/"`` for its logo link, a link
    followed on a click only; what scripts do load is in the network log below."""
    return re.sub(r"(<script\b[^>]*>).*?(</script>)", r"\1\2", html, flags=re.S | re.I)


def page_requests(netlog: str) -> set[str]:
    """The http(s) URLs the page asked for. Chromium's own calls (its updater, accounts:
    initiator "not an origin") fail on the resolver rule too and are not the page's."""
    log = json.loads(netlog)
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return {
        params["url"]
        for event in log["events"]
        if event["type"] == start
        and (params := event.get("params", {})).get("url", "").startswith(("http:", "https:"))
        and params.get("initiator") != "not an origin"
    }


def test_the_network_log_sees_a_page_s_request(chromium: str, tmp_path: Path) -> None:
    """The failure path of the network check: a page that loads an image from a host."""
    page = tmp_path / "external.html"
    page.write_text("<html><body><img src='https://images.example/a.png'></body></html>")
    _, netlog = render(chromium, page, WIDTHS["desktop"], tmp_path, tmp_path / "shot.png")
    assert page_requests(netlog) == {"https://images.example/a.png"}


def test_the_page_makes_no_request_off_the_machine(
    runs: dict[str, tuple[dict[str, Any], Path]],
) -> None:
    for case, (_, page) in runs.items():
        html = markup(page.read_text())
        found = [html[m.start() : m.end() + 40] for m in EXTERNAL.finditer(html)]
        assert found == [], f"{case}: external references {found[:3]}"


def test_the_pattern_catches_an_external_reference() -> None:
    """The failure path of the check above: each kind of reference it must refuse."""
    for bad in (
        "<script src='https://cdn.example/x.js'>",
        '<link href="http://fonts.example/f.css">',
        "<div style=\"background: url('https://img.example/a.png')\">",
        "<img src=//cdn.example/a.png>",
    ):
        assert EXTERNAL.search(markup(bad + "</script>")), bad
    assert not EXTERNAL.search("<a href='#mlstack-status'>") and not EXTERNAL.search("url(#g)")


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("case", CASES)
def test_chromium_renders_the_status_and_plots_of_summary_json(
    runs: dict[str, tuple[dict[str, Any], Path]],
    chromium: str,
    tmp_path: Path,
    case: str,
    width: str,
) -> None:
    summary, page = runs[case]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{case}_{width}.png"
    dom, netlog = render(chromium, page, WIDTHS[width], tmp_path, shot)
    assert shot.exists() and shot.stat().st_size > 10_000, "blank screenshot"
    assert page_requests(netlog) == set(), "the page asked for something off the machine"

    status = summary["operator_status"] or "not judged"
    assert re.search(rf"id=\"mlstack-status\" data-status=\"{status}\"[^>]*>{status.upper()}<", dom)
    history = dom.split('id="mlstack-history"', 1)[1].split("</svg>", 1)[0]
    estimated = summary["performance"]["estimated"]
    if estimated is not None:
        assert f'data-series="estimated" data-value="{estimated:.4f}"' in history
        assert f"estimated roc_auc {estimated:.4f}" in dom
    if summary["status"] == "ok":
        scores = dom.split('id="mlstack-drift-scores"', 1)[1].split("</svg>", 1)[0]
        for column, verdict in summary["data_drift"]["columns"].items():
            assert f">{column}<" in scores and f"{verdict['score']:.3f}" in scores
        rendered = dom.split("<body", 1)[1].split("<script", 1)[0]
        assert "Drifted Columns" in rendered, "Evidently's detail is drawn below"
        assert rendered.index('id="mlstack-status"') < rendered.index("mlstack does not use it")
    else:
        assert "Insufficient data" in dom
