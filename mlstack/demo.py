"""``make demo``: the whole loop on one machine, narrated.

Train with ``dvc repro``, serve the champion with ``bentoml serve``, replay 2016 traffic
with its labels and judge drift (expected: none), then replay a covariate shift and a
concept flip and judge each (expected: drift flagged). Last, close the loop: ``mlstack
retrain`` on the flipped, labeled traffic, the gate's decision, the running service
switching to the new champion (it polls the registry), the same kind of traffic again,
and the verdict after retraining beside the one before. Every step is the command a user
would type, printed as it runs; this module only runs them in order, waits for each, and
always stops the server it started, on success, failure or Ctrl-C. The drift runs and the
retrain run in this process, through the functions their commands call, so Evidently and
MLflow are imported once rather than at each of five starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

from mlstack import scenarios
from mlstack.output import console as people_console
from mlstack.output import print_table
from pipeline import environment
from pipeline.paths import MLFLOW_DB
from pipeline.settings import Settings, load_settings_or_exit
from pipeline.tracking import disable_telemetry
from serving import launcher

console = people_console()
READY_SECONDS = 120
FLUSH_SECONDS = 60
SWITCH_SECONDS = 60  # beyond serving.reload_seconds: the service polls the registry
# Requests in flight while replaying. 64 was tried to fill the server's batches sooner and
# was slower on 2 cores: a 2,000-row replay and its flush took 31 s (p50 524 ms), against
# 16.5 s (p50 78 ms) at 16, the client and both workers sharing the cores.
REPLAY_CONCURRENCY = 16


@dataclass(frozen=True)
class Phase:
    """One replay and the drift verdict the demo expects after it."""

    scenario: str
    expect: str


PHASES = (
    Phase("production_2016", "no drift"),
    Phase("covariate_shift", "data drift"),
    Phase("concept_flip", "concept drift"),
)


def step(message: str) -> None:
    console.rule(f"[bold]{message}")


def run(*command: str) -> None:
    """Run a command in the project, its output shown as it comes; fail loudly."""
    console.print(f"[dim]$ {' '.join(command)}")
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise SystemExit(f"demo: `{' '.join(command)}` exited {result.returncode}")


def start_server(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """``bentoml serve`` in the background; refuses to start over another server."""
    serving = settings.serving
    url = f"http://{serving.host}:{serving.port}"
    try:
        httpx.get(f"{url}/livez", timeout=1)
    except httpx.HTTPError:
        pass
    else:
        raise SystemExit(
            f"demo: something already answers on {url}; stop it or change serving.port"
        )
    command = [sys.executable, "-m", "bentoml", "serve"]
    command += ["--host", serving.host, "--port", str(serving.port)]
    console.print(f"[dim]$ bentoml serve --host {serving.host} --port {serving.port}  (log: {log})")
    return launcher.start(command, log)


def replay(settings: Settings, url: str, name: str, rows_at_most: int | None) -> dict[str, Any]:
    """Send one scenario's rows, then its labels, exactly as ``mlstack replay`` does."""
    from mlstack.replay import replay_frame

    rows, labels = scenarios.load(settings, name)
    if rows_at_most is not None:
        rows = rows.head(rows_at_most)
        labels = None if labels is None else labels.head(rows_at_most)
    result = replay_frame(
        url, rows, labels, settings, concurrency=REPLAY_CONCURRENCY, show_progress=True
    )
    summary = result.summary()
    console.print(
        f"{name}: sent {summary['sent']}, ok {summary['ok']}, errors {summary['errors']}, "
        f"p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, "
        f"labels {result.labels_accepted}/{result.labels_sent}"
    )
    if result.errors:
        raise SystemExit(f"demo: {result.errors} request(s) of {name} failed")
    return summary


def wait_captured(settings: Settings, since: datetime, predictions: int, labels: int) -> None:
    """The capture log flushes on an interval: wait until the window holds what was sent."""
    from monitoring.capture import capture_path, read_window

    target = settings.data.target
    deadline = time.monotonic() + FLUSH_SECONDS
    while time.monotonic() < deadline:
        window = read_window(capture_path(settings), settings, since=since)
        if len(window) >= predictions and int(window[target].notna().sum()) >= labels:
            return
        time.sleep(1)
    raise SystemExit(f"demo: the capture log did not show {predictions} predictions in time")


def judge(settings: Settings, since: datetime, until: datetime) -> dict[str, Any]:
    """``mlstack drift run --since S --until U --json`` on the window: the summary it prints.

    Run in this process, through the function the command calls (the same lock, run and
    exports), so the demo's four runs import Evidently and MLflow once, not four times:
    ~10 s of start-up each on 2 cores."""
    from mlstack.drift_command import JUDGING, locked_run, result_json
    from monitoring.drift_job import JobOptions

    console.print(
        f"[dim]$ mlstack drift run --since {since.isoformat()} --until {until.isoformat()}"
    )
    options = JobOptions(
        since=since, until=until, pushgateway=os.environ.get(environment.PUSHGATEWAY_URL)
    )
    try:
        with console.status(JUDGING):
            result = locked_run(settings, options)
    except Exception as error:
        raise SystemExit(f"demo: mlstack drift run failed: {error}") from error
    if result is None:
        raise SystemExit("demo: another drift run holds the job's lock; the demo needs it")
    summary: dict[str, Any] = json.loads(result_json(result))
    return summary


def retrain(settings: Settings, since: datetime, until: datetime) -> dict[str, Any]:
    """``mlstack retrain --since S --until U --json`` on the window of the flipped traffic:
    its outcome. In this process too, through the function the command calls; the
    pipeline it runs (``dvc repro``) prints its stages as they go."""
    from mlstack.retrain_command import Refused, locked_retrain

    console.print(f"[dim]$ mlstack retrain --since {since.isoformat()} --until {until.isoformat()}")
    try:
        result = locked_retrain(settings, since, until, settings.retrain.min_labeled_rows)
    except Refused as error:
        raise SystemExit(f"demo: mlstack retrain refused: {error}") from None
    except Exception as error:
        raise SystemExit(f"demo: mlstack retrain failed: {error}") from error
    if result is None:
        raise SystemExit("demo: a drift run or another retrain holds the job's lock")
    return result.as_dict()


def served_version(settings: Settings, url: str) -> str | None:
    """The model version ``/predict`` answers with now (one row of the flipped traffic)."""
    from mlstack.replay import feature_records

    rows, _ = scenarios.load(settings, "concept_flip")
    body = {"instances": feature_records(rows.head(1), settings)}
    try:
        answer = httpx.post(f"{url}/predict", json=body, timeout=10)
        return str(answer.json()["model"]["version"]) if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def wait_switch(settings: Settings, url: str, version: str) -> bool:
    """Wait until the running service answers with ``version``; ``False`` (said plainly) if
    it does not within ``SWITCH_SECONDS``: the demo goes on and the verdict is of the old."""
    deadline = time.monotonic() + SWITCH_SECONDS
    while time.monotonic() < deadline:
        if served_version(settings, url) == version:
            console.print(f"the service answers with v{version}, without a restart")
            return True
        time.sleep(1)
    console.print(
        f"[yellow]the service still answers with v{served_version(settings, url)} after "
        f"{SWITCH_SECONDS}s, not the new champion v{version}: it does not follow the "
        "champion alias (serving.reload_seconds); the verdict below is the old model's"
    )
    return False


def verdict(summary: dict[str, Any]) -> str:
    if summary["status"] != "ok":
        return str(summary["status"])
    names = {
        "data_drift": "data drift",
        "prediction_drift": "prediction drift",
        "performance": "performance drop",
        "concept_drift": "concept drift",
        "data_quality": "missing values",
    }
    found = [name for kind, name in names.items() if summary[kind]["detected"]]
    return ", ".join(found) if found else "no drift"


@dataclass
class Loop:
    """What the served part of the demo saw: each phase's replay and verdict, the retrain's
    outcome, whether the server switched to its model, and the replay after it."""

    results: list[tuple[Phase, dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    outcome: dict[str, Any] = field(default_factory=dict)
    switched: bool = False
    after: tuple[dict[str, Any], dict[str, Any]] = ({}, {})


def replay_judge_retrain(
    settings: Settings, url: str, steps: int, rows_at_most: int | None
) -> Loop:
    """Steps 3 to the last, against the server at ``url``: replay each phase and judge it,
    retrain on the flipped traffic, then replay it again to the champion now serving."""
    loop = Loop()
    windows: dict[str, tuple[datetime, datetime]] = {}
    for number, phase in enumerate(PHASES, start=3):
        step(f"{number}/{steps} replay {phase.scenario}, then judge drift")
        since = datetime.now(UTC)
        sent = replay(settings, url, phase.scenario, rows_at_most)
        wait_captured(settings, since, sent["ok"], sent["labels_accepted"])
        loop.results.append((phase, sent, judge(settings, since, datetime.now(UTC))))
        windows[phase.scenario] = (since, datetime.now(UTC))
    step(f"{steps}/{steps} retrain on the flipped, labeled traffic; the gate decides")
    loop.outcome = outcome = retrain(settings, *windows["concept_flip"])
    console.print(f"gate: {outcome['decision']} v{outcome['model_version']}: {outcome['reason']}")
    if outcome["decision"] == "promoted":
        loop.switched = wait_switch(settings, url, str(outcome["model_version"]))
    since = datetime.now(UTC)
    console.print("replaying the same kind of traffic to the champion now serving")
    sent = replay(settings, url, "concept_flip", rows_at_most)
    wait_captured(settings, since, sent["ok"], sent["labels_accepted"])
    loop.after = (sent, judge(settings, since, datetime.now(UTC)))
    return loop


def show_verdicts(settings: Settings, loop: Loop) -> bool:
    """The table of each phase's verdict against the expected one; true if any differs."""
    table = Table(title="mlstack demo: what the drift job said")
    for column in ("replayed", "rows", "expected", "verdict", "report"):
        table.add_column(column)
    failed = False
    for phase, sent, summary in loop.results:
        said = verdict(summary)
        matches = (said == "no drift") if phase.expect == "no drift" else phase.expect in said
        failed |= not matches
        colour = "green" if matches else "red"
        report = os.path.relpath(summary["report"], settings.root)
        table.add_row(phase.scenario, str(sent["ok"]), phase.expect, f"[{colour}]{said}", report)
    print_table(console, table)
    return failed


def show_concept_flip(settings: Settings, loop: Loop) -> bool:
    """The concept flip before and after retraining; true if the loop did not close."""
    before, after = loop.results[-1][2], loop.after[1]
    table = Table(title="mlstack demo: the concept flip, before and after retraining")
    for column in ("concept_flip", "model", "verdict", "realized", "estimated", "report"):
        table.add_column(column)
    for name, summary in (("before retraining", before), ("after retraining", after)):
        concept = summary["concept_drift"]
        table.add_row(
            name,
            f"v{summary['model']['version']}",
            verdict(summary),
            f"{concept['current']:.4f}" if concept.get("current") is not None else "n/a",
            f"{concept['estimated']:.4f}" if concept.get("estimated") is not None else "n/a",
            os.path.relpath(summary["report"], settings.root),
        )
    print_table(console, table)
    outcome = loop.outcome
    console.print(
        f"retrain: {outcome['recent']['labeled_rows']} labeled rows; gate "
        f"{outcome['decision']} v{outcome['model_version']} ({outcome['reason']})"
    )
    realized = [s["concept_drift"].get("current") for s in (before, after)]
    recovered = None not in realized and realized[1] > realized[0]
    if outcome["decision"] != "promoted":
        console.print("[red]the gate kept the old champion: the loop did not close")
        return True
    if loop.switched:
        colour = "green" if recovered else "red"
        console.print(
            f"[{colour}]after retraining: {verdict(after)}; realized "
            f"{settings.drift.performance_metric} on the flipped traffic {realized[0]:.4f} "
            f"-> {realized[1]:.4f}"
        )
        return not recovered
    return False


def main(rows_at_most: int | None = None) -> None:
    """The whole loop; ``rows_at_most`` trims each replay (the end-to-end test uses it)."""
    disable_telemetry()
    settings = load_settings_or_exit()
    serving = settings.serving
    url = f"http://{serving.host}:{serving.port}"
    log = settings.path(".demo/bentoml-serve.log")
    started = time.monotonic()

    steps = 3 + len(PHASES)
    step(f"1/{steps} train, evaluate, promote and package: dvc repro")
    run(sys.executable, "-m", "dvc", "repro")

    step(f"2/{steps} serve the champion: bentoml serve")
    server = start_server(settings, log)
    try:
        try:
            launcher.wait_ready(url, server, log, seconds=READY_SECONDS)
        except launcher.ServerError as error:
            raise SystemExit(f"demo: {error}") from None
        console.print(f"ready at {url}")
        loop = replay_judge_retrain(settings, url, steps, rows_at_most)
    finally:
        console.print("[dim]stopping bentoml serve (SIGTERM: the capture log flushes)")
        launcher.stop(server)

    failed = show_verdicts(settings, loop)
    failed |= show_concept_flip(settings, loop)
    console.print(f"done in {time.monotonic() - started:.0f}s.")
    console.print(f"runs and registry: mlflow ui --backend-store-uri sqlite:///{MLFLOW_DB}")
    console.print(f"drift history: evidently ui --workspace {settings.drift.workspace}")
    if failed:
        raise SystemExit("demo: a verdict differs from what was expected (red above)")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM too unwinds through `finally`: the server is stopped


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    limit = os.environ.get(environment.DEMO_ROWS)
    try:
        main(int(limit) if limit else None)
    except KeyboardInterrupt:
        raise SystemExit("demo: interrupted; the server was stopped") from None
