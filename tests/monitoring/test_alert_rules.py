"""The shipped Prometheus files are valid, the alert rules pass their promtool unit tests,
and the dashboard queries only series that something in this repository produces."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from monitoring.drift_metrics import SERIES
from pipeline.settings import PROJECT_ROOT

PROMETHEUS = PROJECT_ROOT / "monitoring" / "prometheus"
DASHBOARD = PROJECT_ROOT / "monitoring" / "grafana" / "dashboard.json"

# Series the drift job exports, and the service's (BentoML's own plus serving/service_metrics.py).
KNOWN_SERIES = {
    *SERIES,
    "bentoml_service_request_total",
    "bentoml_service_request_duration_seconds_bucket",
    "mlstack_predictions_total",
    "mlstack_predicted_value_bucket",
    "mlstack_capture_dropped_total",
}
PROMQL_WORDS = {"max", "sum", "by", "rate", "time", "histogram_quantile", "le", "increase"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: `make system-deps` installs Debian's prometheus"
    return subprocess.run(
        [binary, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )


def test_alert_rules_pass_their_unit_tests() -> None:
    done = promtool("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_config_and_rules_are_valid() -> None:
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


@pytest.mark.parametrize("expr", dashboard_queries())
def test_dashboard_queries_name_known_series(expr: str) -> None:
    without_labels = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\([^()]*\)(?=\s*\()", " ", expr)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_labels)) - PROMQL_WORDS
    metrics = {n for n in names if n.startswith(("mlstack_", "bentoml_"))}
    assert metrics, expr
    assert metrics <= KNOWN_SERIES, metrics - KNOWN_SERIES


def test_drift_series_are_all_on_the_dashboard() -> None:
    text = DASHBOARD.read_text()
    for name in sorted(
        n for n in KNOWN_SERIES if n.startswith("mlstack_drift") or n == "mlstack_performance"
    ):
        assert name in text, name


def test_cronjob_runs_the_drift_command_without_overlap() -> None:
    """The CronJob in deploy/kubernetes (rendered and validated in tests/deploy)."""
    import yaml

    manifest = PROJECT_ROOT / "deploy" / "kubernetes" / "base" / "drift-cronjob.yaml"
    job = next(d for d in yaml.safe_load_all(manifest.read_text()) if d["kind"] == "CronJob")
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    container = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:3] == ["mlstack", "drift", "run"]
    assert "--pushgateway" in container["command"]
    assert {e["configMapRef"]["name"] for e in container["envFrom"]} == {"mlstack-endpoints"}


def test_alert_rules_reference_existing_series() -> None:
    rules = (PROMETHEUS / "alerts.yml").read_text()
    used = set(re.findall(r"\b(?:mlstack|bentoml)_[a-z_]+", rules))
    assert used <= KNOWN_SERIES | {"mlstack_drift"}, used - KNOWN_SERIES
