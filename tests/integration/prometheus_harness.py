"""A real Pushgateway and a real Prometheus for the integration tests, on 127.0.0.1.

Prometheus runs the shipped ``prometheus.yml`` (its targets pointed at the test's ports)
and loads the shipped ``alerts.yml``. Waits poll until a condition holds or a generous
deadline passes; no timings are asserted.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from serving_harness import free_port

from monitoring import drift_metrics
from pipeline.settings import PROJECT_ROOT
from serving import service_metrics

SHIPPED = PROJECT_ROOT / "monitoring" / "prometheus"
DASHBOARD = PROJECT_ROOT / "monitoring" / "grafana" / "dashboard.json"
T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T | None], deadline: float = 120) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    end = time.monotonic() + deadline
    while True:
        try:
            value = check()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.5)


def binary(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: `make system-deps` installs it"
    return path


def start(args: list[str], log: Path, ready_url: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{args[0]} exited {process.returncode}:\n{log.read_text()}")
        return httpx.get(ready_url, timeout=2).status_code == 200

    wait_for(f"{args[0]} to be ready", ready)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def start_pushgateway(folder: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [binary("prometheus-pushgateway"), f"--web.listen-address=127.0.0.1:{port}"]
    return url, start(args, folder / "pushgateway.log", f"{url}/-/ready")


def start_prometheus(
    folder: Path, service_url: str, pushgateway_url: str
) -> tuple[str, subprocess.Popen[bytes]]:
    """Prometheus with the shipped config and rules, scraping the service and the gateway."""
    config = yaml.safe_load((SHIPPED / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(SHIPPED / "alerts.yml")]
    targets = {
        "mlstack-service": service_url.removeprefix("http://"),
        "pushgateway": pushgateway_url.removeprefix("http://"),
    }
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        binary("prometheus"),
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return url, start(args, folder / "prometheus.log", f"{url}/-/ready")


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    answer.raise_for_status()
    body = answer.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def task_only_series() -> dict[str, set[str]]:
    """Per task, the series (drift job's and service's) only a model of that task exports."""
    tasks = drift_metrics.TASK_ONLY.keys() | service_metrics.TASK_ONLY.keys()
    return {
        task: {*drift_metrics.TASK_ONLY.get(task, ()), *service_metrics.TASK_ONLY.get(task, ())}
        for task in tasks
    }


def mentions(expr: str, names: set[str]) -> bool:
    return any(re.search(rf"\b{name}(_total|_bucket|_sum|_count)?\b", expr) for name in names)


def dashboard_queries(task: str | None = None) -> list[tuple[str, str]]:
    """(panel title, query) of the dashboard; with ``task``, those a model of it feeds:
    no query naming another task's own series."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queries = [(p["title"], t["expr"]) for p in panels for t in p["targets"]]
    if task is None:
        return queries
    others = {name for t, names in task_only_series().items() if t != task for name in names}
    return [(title, expr) for title, expr in queries if not mentions(expr, others)]
