"""The page's history: the last ``drift.history_runs`` runs read back from the run folders.

Real ``mlstack drift run`` runs in a temporary project: a first run plots itself alone,
three runs are three points, ``history_runs`` cuts the oldest off, and an old run whose
``summary.json`` is missing, not JSON or not a summary is skipped and named on the page,
never a failed run. With an MLflow store, the plots are PNG artifacts of the monitoring
run. A regressor's runs plot its interval coverage against the nominal level.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from mlstack import scenarios
from monitoring.drift import compare
from monitoring.drift_history import History, coverage_svg, point_of, read_history, statistics_svg
from monitoring.drift_page import ranked
from monitoring.drift_plots import write_plots
from pipeline.evaluate import evaluate
from pipeline.model import build_model, predict_frame
from pipeline.paths import DRIFT_COVERAGE_PLOT, DRIFT_PERFORMANCE_PLOT, DRIFT_SCORES_PLOT
from pipeline.prepare import prepare
from pipeline.settings import PROJECT_ROOT, parse_settings
from tests.monitoring.conftest import DriftData, case_windows, drift_project, run_drift

pytestmark = pytest.mark.slow

PNG = b"\x89PNG\r\n\x1a\n"


def run(root: Path, current: Path, *extra: str) -> Any:
    return run_drift(root, "--current", str(current), *extra)


def quiet_run(root: Path, current: Path) -> tuple[Path, dict[str, Any], str]:
    """A run without MLflow: its folder, ``summary.json`` and ``report.html``."""
    result = run(root, current, "--no-mlflow")
    assert result.exit_code == 0, result.output
    folder = Path(json.loads(result.stdout)["folder"])
    return (
        folder,
        json.loads((folder / "summary.json").read_text()),
        (folder / "report.html").read_text(),
    )


def estimates(html: str) -> list[str]:
    svg = html.split("id='mlstack-history'", 1)[1].split("</svg>", 1)[0]
    return re.findall(r"data-series='estimated' data-value='([0-9.]+)'", svg)


@pytest.fixture(scope="module")
def windows(drift_data: DriftData, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return case_windows(drift_data, tmp_path_factory.mktemp("windows"))


def test_a_first_run_plots_itself_and_three_runs_plot_three(
    drift_data: DriftData, windows: dict[str, Path], tmp_path: Path
) -> None:
    root = drift_project(tmp_path, drift_data)
    _, first, html = quiet_run(root, windows["stable"])
    assert estimates(html) == [f"{first['performance']['estimated']:.4f}"]
    assert "mlstack-history-notes" not in html
    summaries = [first]
    for case in ("covariate_shift", "concept_drift"):
        summaries.append(quiet_run(root, windows[case])[1])
    _, _, html = quiet_run(root, windows["no_labels"])
    latest = json.loads((root / "reports/drift/latest.json").read_text())
    summaries.append(json.loads((root / "reports/drift" / latest["summary"]).read_text()))
    assert estimates(html) == [f"{s['performance']['estimated']:.4f}" for s in summaries]
    assert html.count("data-alert='performance'") == 1  # the concept drift run's drop
    statistics = html.split("id='mlstack-statistics'", 1)[1].split("</svg>", 1)[0]
    shown = re.findall(r"data-series='([^']+)'", statistics)
    # The last run's three nearest columns, each with a point in every one of the four runs.
    assert len(set(shown)) == 3
    assert all(shown.count(c) == 4 for c in set(shown))


def _payload(scores: dict[str, tuple[float, float, bool]]) -> dict[str, Any]:
    columns = {c: {"score": s, "threshold": t, "detected": d} for c, (s, t, d) in scores.items()}
    return {"performance": {"metric": "roc_auc"}, "data_drift": {"columns": columns}}


def test_the_statistics_plot_follows_the_columns_nearest_their_threshold() -> None:
    runs = [
        {"AGEP": (0.02, 0.08, False), "SCHL": (0.03, 0.06, False), "SEX": (0.001, 0.05, False)},
        {"AGEP": (0.04, 0.08, False), "SCHL": (0.03, 0.06, False), "SEX": (0.002, 0.05, False)},
        {"AGEP": (0.12, 0.08, True), "SCHL": (0.02, 0.05, False), "MAR": (0.03, 0.05, False)},
        {"AGEP": (0.01, 0.08, False), "SCHL": (0.03, 0.05, False), "MAR": (0.03, 0.05, False)},
    ]
    history = History(
        points=[point_of(f"2026120{i}T000000Z", _payload(r)) for i, r in enumerate(runs, 1)]
    )
    svg = statistics_svg(history)
    # The last run's nearest: SCHL and MAR (0.6 of theirs), AGEP (0.125); not SEX.
    assert "data-series='SEX'" not in svg
    assert re.findall(r"data-series='AGEP' data-value='([0-9.]+)'", svg) == [
        "0.2500",
        "0.5000",
        "1.5000",
        "0.1250",
    ]
    assert svg.count("data-alert='AGEP'") == 1
    assert svg.count("data-series='MAR'") == 2  # from the run it first appears in
    old = History(points=[point_of("20261201T000000Z", {"performance": {"metric": "roc_auc"}})])
    assert old.points[0].columns == {}
    assert statistics_svg(old) == ""


def test_history_runs_keeps_the_newest(
    drift_data: DriftData, windows: dict[str, Path], tmp_path: Path
) -> None:
    root = drift_project(tmp_path, drift_data, history_runs=2)
    quiet_run(root, windows["stable"])
    _, second, _ = quiet_run(root, windows["covariate_shift"])
    _, third, html = quiet_run(root, windows["concept_drift"])
    assert estimates(html) == [f"{s['performance']['estimated']:.4f}" for s in (second, third)]


def test_an_unreadable_old_run_is_skipped_with_a_note(
    drift_data: DriftData, windows: dict[str, Path], tmp_path: Path
) -> None:
    root = drift_project(tmp_path, drift_data)
    folders = [quiet_run(root, windows[c])[0] for c in ("stable", "covariate_shift", "no_labels")]
    (folders[0] / "summary.json").write_text('{"status": "ok", "performance": ')  # cut short
    (folders[1] / "summary.json").unlink()
    kept = json.loads((folders[2] / "summary.json").read_text())
    not_a_summary = root / "reports" / "drift" / "20000101T000000Z"
    not_a_summary.mkdir()
    (not_a_summary / "summary.json").write_text(json.dumps({"performance": ["roc_auc"]}))
    (root / "reports" / "drift" / "notes").mkdir()  # no run folder: not read at all

    _, summary, html = quiet_run(root, windows["stable"])

    notes = html.split("id='mlstack-history-notes'", 1)[1].split("</ul>", 1)[0]
    assert f"run {folders[0].name} skipped: unreadable summary (JSONDecodeError" in notes
    assert f"run {folders[1].name} skipped: it has no summary.json" in notes
    assert "run 20000101T000000Z skipped: unreadable summary (ValueError: no" in notes
    assert "notes" not in notes.replace("mlstack-history-notes", "")
    assert estimates(html) == [f"{s['performance']['estimated']:.4f}" for s in (kept, summary)]


@pytest.mark.parametrize("bad", [0, "many", 1.5])
def test_a_bad_history_runs_is_exit_2_naming_the_key(
    drift_data: DriftData, windows: dict[str, Path], tmp_path: Path, bad: object
) -> None:
    root = drift_project(tmp_path, drift_data)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["drift"]["history_runs"] = bad
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    result = run(root, windows["stable"], "--no-mlflow")
    assert result.exit_code == 2
    assert "drift.history_runs" in result.output
    assert not (root / "reports" / "drift").exists(), "refused before anything is written"


@pytest.mark.usefixtures("no_user_uri")
def test_the_plots_are_png_artifacts_of_the_monitoring_run(
    drift_data: DriftData, windows: dict[str, Path], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    root = drift_project(tmp_path, drift_data)
    store = f"sqlite:///{root / 'mlflow.db'}"
    MlflowClient(tracking_uri=store, registry_uri=store).search_experiments()  # a real store
    for case in ("stable", "concept_drift"):
        result = run(root, windows[case])
        assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    summary = json.loads((Path(printed["folder"]) / "summary.json").read_text())
    assert printed["operator_status"] == summary["operator_status"] == "act"
    client = MlflowClient(tracking_uri=store)
    logged = {a.path for a in client.list_artifacts(summary["mlflow_run_id"], "drift/plots")}
    assert logged == {f"drift/{DRIFT_PERFORMANCE_PLOT}", f"drift/{DRIFT_SCORES_PLOT}"}
    for name in (DRIFT_PERFORMANCE_PLOT, DRIFT_SCORES_PLOT):
        local = Path(
            client.download_artifacts(summary["mlflow_run_id"], f"drift/{name}", str(tmp_path))
        )
        data = local.read_bytes()
        assert data.startswith(PNG) and 5_000 < len(data) < 150_000, (name, len(data))
    html = (Path(printed["folder"]) / "report.html").read_text()
    assert f"<span id='mlstack-run-id'>{summary['mlflow_run_id']}</span>" in html
    logged_page = client.download_artifacts(summary["mlflow_run_id"], "drift/report.html")
    assert summary["mlflow_run_id"] in Path(logged_page).read_text(), "MLflow's copy too"


def test_a_run_without_mlflow_writes_no_png(
    drift_data: DriftData, windows: dict[str, Path], tmp_path: Path
) -> None:
    root = drift_project(tmp_path, drift_data)
    folder, _, _ = quiet_run(root, windows["stable"])
    assert not (folder / "plots").exists()


EXAMPLE = PROJECT_ROOT / "examples" / "regression" / "params.yaml"


def test_a_regressor_s_history_plots_coverage_against_nominal(tmp_path: Path) -> None:
    """Two real regression windows (as they came; prices 30% lower) in two run folders:
    the coverage plot has both, the nominal line and the lost coverage as an alert."""
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["evaluate"]["importance_repeats"] = 1
    settings = parse_settings(raw, root=PROJECT_ROOT)
    cars = pd.read_parquet(PROJECT_ROOT / "data/raw/car_price/reference.parquet")
    train, test = prepare(cars, settings.data)
    model = build_model(settings.data.features, settings.train, 0, "regression")
    model.fit(train[settings.data.features.all], train[settings.data.target])
    evaluation = evaluate(model, test, pd.DataFrame(), settings, model_name="c", model_version="1")
    reports = tmp_path / "reports"
    summaries = []
    for n, name in enumerate(("production_early", "price_drop")):
        rows, prices = scenarios.load(settings, name)
        assert prices is not None
        rows = rows.head(1200)
        served = predict_frame(model, rows[settings.data.features.all], evaluation.interval)
        current = pd.concat([rows, served], axis=1).assign(price=prices.head(1200).to_numpy())
        summary = compare(evaluation.reference, current, settings, importance=evaluation.importance)
        folder = reports / f"20261207T00000{n}Z"
        folder.mkdir(parents=True)
        if n == 0:
            (folder / "summary.json").write_text(summary.model_dump_json())
        summaries.append(summary)
    history = read_history(reports, folder, summaries[-1], settings.drift.history_runs)
    assert history.notes == [] and history.has_coverage
    svg = coverage_svg(history)
    realized = re.findall(r"data-series='coverage' data-value='([0-9.]+)'", svg)
    coverage = [s.performance.coverage for s in summaries]
    assert realized == [f"{c.realized:.4f}" for c in coverage if c is not None and c.realized]
    assert svg.count("data-series='nominal'") == 2
    assert svg.count("data-alert='coverage'") == sum(bool(c and c.detected) for c in coverage) >= 1
    written = write_plots(history, ranked(summaries[-1].data_drift.columns), folder)
    assert folder / DRIFT_COVERAGE_PLOT in written
    assert (folder / DRIFT_COVERAGE_PLOT).read_bytes().startswith(PNG)
    shutil.rmtree(reports)
