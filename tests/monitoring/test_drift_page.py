"""The operator's page (``report.html``) and its one status, from real drift runs.

``mlstack drift run --current FILE`` on each case the page tells apart (stable, covariate
shift, concept drift, performance drop, no labels, insufficient data), one after the other
in one project, so the last run's page also shows the runs before it. Each page is read
back and held against its own ``summary.json``: the status, the window, the model and
every verdict line; Evidently's unweighted dataset verdict is labelled as not mlstack's.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.monitoring.conftest import CASES, DriftData, run_cases

pytestmark = pytest.mark.slow

EXPECTED = {
    "stable": "ok",
    "covariate_shift": "watch",
    "concept_drift": "act",
    "performance_drop": "act",
    "no_labels": "ok",
    "insufficient_data": None,
}


@pytest.fixture(scope="module")
def pages(
    drift_data: DriftData, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[dict[str, Any], str]]:
    """Each case's ``summary.json`` and ``report.html``, run in the order of CASES."""
    out = {}
    runs = run_cases(drift_data, tmp_path_factory.mktemp("page-project"))
    for case, (summary, report) in runs.items():
        out[case] = summary, report.read_text()
        performance, concept = summary["performance"], summary["concept_drift"]
        print(
            f"\n{case}: {summary['operator_status']} data {summary['data_drift']['detected']} "
            f"performance {performance['detected']} (est {performance['estimated']} real "
            f"{performance['realized']} lower {performance['lower_threshold']}) concept "
            f"{concept['detected']} gap {concept['gap']} > {concept['gap_threshold']}"
        )
    return out


def element(html: str, element_id: str) -> str:
    """The text inside the element with ``id`` (tags stripped)."""
    match = re.search(rf"id=['\"]?{element_id}['\"]?[^>]*>(.*?)</(li|div|p|ul)>", html, re.S)
    assert match, f"no #{element_id} on the page"
    return re.sub(r"<[^>]+>", "", match.group(1))


@pytest.mark.parametrize("case", CASES)
def test_each_case_has_its_status(pages: dict[str, tuple[dict[str, Any], str]], case: str) -> None:
    summary, html = pages[case]
    assert summary["operator_status"] == EXPECTED[case]
    shown = EXPECTED[case] or "not judged"
    assert re.search(rf"id='mlstack-status' data-status='{shown}'", html)
    assert html.count("id='mlstack-status'") == 1, "one status per page"


def test_act_is_exactly_when_a_retrain_on_performance_or_concept_would_fire(
    pages: dict[str, tuple[dict[str, Any], str]],
) -> None:
    for case, (summary, _) in pages.items():
        fires = summary["performance"]["detected"] is True
        fires = fires or summary["concept_drift"]["detected"] is True
        assert (summary["operator_status"] == "act") == fires, case
        if summary["operator_status"] == "ok":
            assert summary["drift_detected"] is False, case
        if summary["operator_status"] == "watch":
            assert summary["drift_detected"] is True, case


def test_the_header_lines_match_summary_json(
    pages: dict[str, tuple[dict[str, Any], str]],
) -> None:
    for case, (summary, html) in pages.items():
        rows = summary["rows"]
        window = element(html, "mlstack-window")
        assert f"{rows['current']} rows, {rows['labeled']} labeled" in window, case
        assert summary["window"]["source"] in window, case
        model = element(html, "mlstack-model")
        named = f"model {summary['model']['name']} version {summary['model']['version']}"
        trained = summary["model"]["run_id"]  # files carrying their own predictions: none
        assert model == named + (
            f", training run {trained}" if trained else ", training run not known"
        )
        assert f"({rows['reference']} rows)" in element(html, "mlstack-reference")
        assert summary["started"] in element(html, "mlstack-run"), case
        for section in ("data_drift", "prediction_drift", "performance", "concept_drift"):
            detected = summary[section]["detected"]
            state = {True: "found", False: "not found", None: "not judged"}[detected]
            assert f"data-verdict='{section}' data-state='{state}'" in html, (case, section)


def test_the_figures_behind_the_verdicts_are_summary_json_s(
    pages: dict[str, tuple[dict[str, Any], str]],
) -> None:
    summary, html = pages["concept_drift"]
    performance, concept = summary["performance"], summary["concept_drift"]
    line = element(html, "mlstack-history-latest")
    assert f"estimated roc_auc {performance['estimated']:.4f}" in line
    assert f"realized {performance['realized']:.4f}" in line
    verdicts = html.split("data-verdict='concept_drift'", 1)[1].split("</li>", 1)[0]
    assert f"gap {concept['gap']:.4f}" in verdicts
    summary, html = pages["no_labels"]
    verdicts = html.split("data-verdict='performance'", 1)[1].split("</li>", 1)[0]
    assert f"estimated roc_auc {summary['performance']['estimated']:.4f}" in verdicts
    assert "realized not yet (0 of" in verdicts


def test_each_column_shows_its_score_threshold_and_p_value_as_summary_json(
    pages: dict[str, tuple[dict[str, Any], str]],
) -> None:
    """The feature table carries what summary.json says of each column: the score, the
    threshold and where it came from (calibrated on the reference or fixed), the p-value."""
    summary, html = pages["covariate_shift"]
    table = html.split("id='mlstack-columns'", 1)[1].split("</table>", 1)[0]
    cells = {
        row[0]: row
        for row in (
            re.findall(r"<td>(.*?)</td>", tr) for tr in re.findall(r"<tr>(.*?)</tr>", table)
        )
        if row
    }
    columns = summary["data_drift"]["columns"]
    assert set(cells) == set(columns)
    assert any(c["calibrated"] for c in columns.values()), "params.yaml calibrates"
    for name, column in columns.items():
        _, _, method, score, threshold, source, p_value, drifted, _ = cells[name]
        assert (method, score, threshold) == (
            column["method"],
            f"{column['score']:.4f}",
            f"{column['threshold']:.4f}",
        ), name
        assert source == ("calibrated" if column["calibrated"] else "fixed"), name
        expected = "n/a" if column["p_value"] is None else f"{column['p_value']:.3g}"
        assert p_value == expected, name
        assert drifted == ("yes" if column["detected"] else "no"), name


def test_no_page_asserts_a_second_dataset_verdict(
    pages: dict[str, tuple[dict[str, Any], str]],
) -> None:
    """Evidently's "Dataset Drift" widget counts the unweighted share of columns: on the
    covariate shift it disagrees with mlstack, and the page says plainly it is not used."""
    for case, (summary, html) in pages.items():
        if summary["status"] != "ok":
            assert "Evidently" not in html.split("<script", 1)[0], "no Evidently report"
            continue
        note = html.index("id='mlstack-evidently-note'")
        assert "mlstack does not use it" in html[note : note + 800], case
        assert html.index("id='mlstack-status'") < note, "mlstack's verdict comes first"
        assert html.count("id='mlstack-status'") == 1


def test_the_latest_page_plots_every_run_before_it(
    pages: dict[str, tuple[dict[str, Any], str]],
) -> None:
    _, html = pages["insufficient_data"]
    svg = html.split("id='mlstack-history'", 1)[1].split("</svg>", 1)[0]
    estimates = re.findall(r"data-series='estimated' data-value='([0-9.]+)'", svg)
    judged = [pages[c][0] for c in CASES if pages[c][0]["performance"]["estimated"] is not None]
    assert estimates == [f"{s['performance']['estimated']:.4f}" for s in judged]
    realized = re.findall(r"data-series='realized' data-value='([0-9.]+)'", svg)
    assert realized == [
        f"{s['performance']['realized']:.4f}" for s in judged if s["performance"]["realized"]
    ]
    alerts = svg.count("data-alert='performance'")
    assert alerts == sum(s["performance"]["detected"] is True for s in judged)


def test_the_drifted_features_point_to_their_distributions(
    pages: dict[str, tuple[dict[str, Any], str]],
) -> None:
    summary, html = pages["covariate_shift"]
    columns = summary["data_drift"]["columns"]
    drifted = sorted(c for c, v in columns.items() if v["detected"])
    assert drifted == ["AGEP", "MAR"]
    line = element(html, "mlstack-distributions")
    assert all(c in line for c in drifted) and "href='#mlstack-evidently-note'" in html
    assert "mlstack-distributions" not in pages["stable"][1], "nothing drifted, no pointer"
