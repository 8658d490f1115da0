"""``mlstack drift``: run the drift job once, or again and again on a schedule.

Exit status of ``run``: 0 when the run completed (drift or not, or too little data), 3
with ``--fail-on-drift`` when any drift was detected, 1 when the run failed (the message
names the cause: a column mismatch, a missing reference set, no champion to score with),
2 when the command line or the params file is wrong (the message names the key).
``--json`` prints the run's summary as one JSON object on stdout, for scripts and tests;
a failed run (exit 1 or 2) prints ``{"status": "failed", "error", "type", "exit_code"}``.
Two runs never overlap, across processes too: a run that finds the lock taken is
skipped with a warning and exits 0, so cron does not pile runs up behind a slow one.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from croniter import croniter
from filelock import FileLock, Timeout

from mlstack.output import console
from mlstack.window import parse_duration, parse_window
from monitoring.drift_summary import RetrainOn
from pipeline import environment
from pipeline.paths import DRIFT_REPORT_FILE, DRIFT_SUMMARY_FILE
from pipeline.settings import SettingsError, exit_on_bad_settings, load_settings

# The job itself (monitoring.drift_job, and mlstack.retrain_command) is imported inside
# the functions that run it: it pulls scikit-learn in (about 2 s on 2 cores), which
# `mlstack --help` and a mistyped option should not wait for.
if TYPE_CHECKING:
    from collections.abc import Callable

    from monitoring.drift_job import JobOptions, JobResult
    from pipeline.settings import Settings

logger = logging.getLogger("mlstack.drift")

EXIT_DRIFT = 3
JUDGING = "judging drift: reading, comparing, exporting"  # shown while a run works

drift_app = typer.Typer(
    help="Judge data, prediction and concept drift of what the service served.",
    no_args_is_help=True,
)


def _options(
    current: Path | None,
    reference: Path | None,
    since: str | None,
    until: str | None,
    last: str | None,
    pushgateway: str | None,
    textfile: Path | None,
    mlflow: bool,
    workspace: bool,
) -> JobOptions:
    from monitoring.drift_job import JobOptions

    if current is not None and (since or until or last):
        raise typer.BadParameter("--current reads a file: it takes no --since, --until or --last")
    start, end = parse_window(since, until, last)
    return JobOptions(
        current=current,
        reference=reference,
        since=start,
        until=end,
        pushgateway=pushgateway,
        textfile=textfile,
        mlflow=mlflow,
        workspace=workspace,
    )


def locked_run(
    settings: Settings,
    options: JobOptions,
    then: Callable[[JobResult], None] | None = None,
) -> JobResult | None:
    """One run under the job's file lock, and ``then`` (a retrain) under the same lock;
    ``None`` when another run holds it."""
    from monitoring.drift_job import lock_path, run_once

    path = lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path), timeout=0):
            result = run_once(settings, options)
            if then is not None:
                then(result)
            return result
    except Timeout:
        logger.warning("drift: another run holds %s; skipping this one", path)
        return None


def _report(result: JobResult) -> None:
    summary = result.summary
    data, concept = summary.data_drift, summary.concept_drift
    typer.echo(f"status: {summary.status}  rows: {summary.rows.model_dump()}")
    if data.detected is not None:
        drifted = [c for c, v in data.columns.items() if v.detected]
        typer.echo(
            f"data drift: {data.detected} (importance-weighted share {data.weighted_share:.3f}, "
            f"share {data.share:.3f}, columns {drifted or 'none'})"
        )
        multivariate = summary.multivariate
        if multivariate.detected is not None:
            typer.echo(
                f"multivariate drift: {multivariate.detected} (domain classifier AUC "
                f"{multivariate.score:.3f}, threshold {multivariate.threshold:.3f})"
            )
        typer.echo(f"prediction drift: {summary.prediction_drift.detected}")
        emptied = [c for c, v in summary.data_quality.columns.items() if v.detected]
        typer.echo(f"missing values: {summary.data_quality.detected} ({emptied or 'none'})")
    performance = summary.performance
    if performance.estimated is not None:
        realized = "n/a" if performance.realized is None else f"{performance.realized:.4f}"
        side, edge = "lower", performance.lower_threshold
        if not performance.higher_is_better:
            side, edge = "upper", performance.upper_threshold
        typer.echo(
            f"performance drop: {performance.detected} ({performance.metric} reference "
            f"{performance.reference:.4f}, estimated {performance.estimated:.4f}, realized "
            f"{realized}, {side} threshold {edge:.4f})"
        )
        covered = performance.coverage
        if covered is not None and covered.realized is not None:
            typer.echo(
                f"interval coverage: {covered.realized:.3f} of {covered.labeled_rows} labeled "
                f"rows (nominal {covered.nominal}), below it: {covered.detected}"
            )
    if concept.detected is not None:
        typer.echo(
            f"concept drift: {concept.detected} (realized {concept.current:.4f} vs estimated "
            f"{concept.estimated:.4f}, p={concept.p_value:.4f}); "
            f"label drift: {summary.label_drift.detected}"
        )
    typer.echo(f"report: {result.folder / DRIFT_REPORT_FILE}")


def job_settings(as_json: bool = False) -> Settings:
    """The settings, checked for what the job needs before it reads anything: bad ones
    end the process with exit 2, naming the key; with ``--json`` also as one JSON object on
    stdout, so a script reading stdout never gets nothing back."""
    from monitoring.drift_job import check_settings

    try:
        settings = load_settings()
        check_settings(settings)
    except SettingsError as error:
        if as_json:
            typer.echo(failure_json(" ".join(str(error).split()), "SettingsError", 2))
        exit_on_bad_settings(error)
    return settings


def failure_json(message: str, kind: str, code: int) -> str:
    """A run that could not finish, as one JSON object: ``status`` is ``"failed"``."""
    return json.dumps({"status": "failed", "error": message, "type": kind, "exit_code": code})


def result_json(result: JobResult) -> str:
    """The run as one JSON object: its summary (the keys of ``summary.json``) and folder."""
    payload = {
        **result.summary.model_dump(mode="json"),
        "drift_detected": result.summary.drift_detected,
        "operator_status": result.summary.operator_status,
        "folder": str(result.folder),
        "report": str(result.folder / DRIFT_REPORT_FILE),
        "window": result.window,
    }
    if result.reference_scored_by is not None:
        payload["reference_scored_by"] = result.reference_scored_by
    return json.dumps(payload)


CurrentOpt = Annotated[
    Path | None,
    typer.Option(
        "--current",
        help="Parquet or CSV rows to judge instead of the capture log (labels optional; "
        "rows without predictions are scored with the champion).",
        exists=True,
        dir_okay=False,
    ),
]
ReferenceOpt = Annotated[
    Path | None,
    typer.Option(help="Reference set (default: the one the pipeline's evaluate stage wrote)."),
]
SinceOpt = Annotated[str | None, typer.Option(help="Window start, ISO 8601 (UTC if no zone).")]
UntilOpt = Annotated[
    str | None,
    typer.Option(
        help="Window end, ISO 8601 (default: now; with neither --since nor --until, now "
        "less capture.flush_seconds and 30 s, so rows still in write-ahead segments wait "
        "for the next window)."
    ),
]
LastOpt = Annotated[str | None, typer.Option(help="Window length back from --until, e.g. 24h.")]
GatewayOpt = Annotated[
    str | None,
    typer.Option(envvar=environment.PUSHGATEWAY_URL, help="Push the series to this Pushgateway."),
]
TextfileOpt = Annotated[
    Path | None, typer.Option(help="Write the series in node_exporter textfile format.")
]
MlflowOpt = Annotated[bool, typer.Option(help="Log the run to MLflow's monitoring experiment.")]
WorkspaceOpt = Annotated[bool, typer.Option(help="Add the snapshot to the Evidently workspace.")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the summary as one JSON object, nothing else.")
]


@drift_app.command("run")
def run(
    current: CurrentOpt = None,
    reference: ReferenceOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    last: LastOpt = None,
    fail_on_drift: Annotated[
        bool, typer.Option(help=f"Exit {EXIT_DRIFT} when any drift is detected.")
    ] = False,
    pushgateway: GatewayOpt = None,
    textfile: TextfileOpt = None,
    mlflow: MlflowOpt = True,
    workspace: WorkspaceOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Compare a window of served rows (or a file) with the reference set, once.

    By default the window is everything captured since the last successful run, up to
    shortly before now (rows still on their way into the store wait for the next run).
    Unreadable capture files are moved to the store's quarantine/ and named in the
    summary's window.skipped_files; the rest of the window is judged.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    options = _options(
        current, reference, since, until, last, pushgateway, textfile, mlflow, workspace
    )
    settings = job_settings(as_json)
    try:
        with console(stderr=True).status(JUDGING):
            result = locked_run(settings, options)
    except Exception as error:
        message = " ".join(str(error).split()) or type(error).__name__
        typer.echo(f"drift run failed: {message}", err=True)
        if as_json:
            typer.echo(failure_json(message, type(error).__name__, 1))
        raise typer.Exit(1) from error
    if result is None:
        if as_json:
            typer.echo(json.dumps({"status": "skipped", "reason": "another run holds the lock"}))
        return
    if as_json:
        typer.echo(result_json(result))
    else:
        _report(result)
    if fail_on_drift and result.summary.drift_detected:
        raise typer.Exit(EXIT_DRIFT)


def next_fire(now: datetime, every: timedelta | None, cron: str | None) -> datetime:
    """When the schedule fires next after ``now``."""
    if cron is not None:
        fire: datetime = croniter(cron, now).get_next(datetime)
        return fire
    assert every is not None
    return now + every


def verdict_matches(result: JobResult, on: RetrainOn) -> bool:
    return result.summary.triggers_retrain(on)


def retrain_after(settings: Settings, result: JobResult, on: RetrainOn) -> dict[str, Any]:
    """``mlstack retrain`` on the window the run judged (the caller holds the lock); its
    outcome, also written into the run's ``summary.json`` under ``retrain``."""
    from mlstack.retrain_command import Refused, retrain
    from monitoring.drift_job import add_to_summary

    trigger = f"drift schedule: {on.value} drift in run {result.folder.name}"
    since, until = result.window.get("since"), result.window.get("until")
    outcome: dict[str, Any] = {"trigger": trigger}
    try:
        done = retrain(
            settings,
            datetime.fromisoformat(since) if since else None,
            datetime.fromisoformat(until) if until else None,
            settings.retrain.min_labeled_rows,
            trigger,
        )
        outcome.update(done.as_dict())
        logger.info(
            "drift: retrained after %s drift: %s (%s)", on.value, done.status, outcome["reason"]
        )
    except Refused as error:
        outcome.update(status="refused", reason=str(error))
        logger.warning("drift: retrain refused: %s", error)
    except Exception as error:  # noqa: BLE001 - reported, counted, and the schedule goes on
        outcome.update(status="failed", reason=str(error))
        logger.exception("drift: retrain after %s drift failed", on.value)
    add_to_summary(result.folder, "retrain", outcome)
    return outcome


@drift_app.command("schedule")
def schedule(
    every: Annotated[str | None, typer.Option(help="Run every interval, e.g. 15m.")] = None,
    cron: Annotated[str | None, typer.Option(help="Run on a cron expression (UTC).")] = None,
    max_runs: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many runs (at least 1).")
    ] = None,
    pushgateway: GatewayOpt = None,
    textfile: TextfileOpt = None,
    mlflow: MlflowOpt = True,
    workspace: WorkspaceOpt = True,
    retrain_on: Annotated[
        RetrainOn | None,
        typer.Option(
            help="After a run with this verdict, `mlstack retrain` on the window it judged, "
            f"under the same lock; the outcome goes into the run's {DRIFT_SUMMARY_FILE}."
        ),
    ] = None,
) -> None:
    """Run the drift job again and again in this process; a failed run is logged, not fatal.

    Each run judges what was captured since the last successful one. With --max-runs, the
    exit status is 1 when any run failed (the log names each failure), else 0; a retrain
    that failed (not one the gate rejected or too few labels refused) counts as a failed run.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    interval = _schedule_interval(every, cron)
    settings = job_settings()
    runs = failed = 0
    retrained: list[dict[str, Any]] = []  # this run's retrain outcome, if it retrained

    def then(result: JobResult) -> None:
        if retrain_on is not None and verdict_matches(result, retrain_on):
            retrained.append(retrain_after(settings, result, retrain_on))

    now = datetime.now(UTC)
    fire = now if interval is not None else next_fire(now, None, cron)
    while max_runs is None or runs < max_runs:
        if fire > datetime.now(UTC):
            time.sleep((fire - datetime.now(UTC)).total_seconds())
        started = datetime.now(UTC)
        options = _options(None, None, None, None, None, pushgateway, textfile, mlflow, workspace)
        retrained.clear()
        if not _scheduled_run(settings, options, then, retrained, (failed, runs + 1)):
            failed += 1
        runs += 1
        if max_runs is not None and runs >= max_runs:
            break
        fire = _fire_after(max(started, fire), interval, cron)
    if failed:
        logger.error("drift: %d of %d scheduled run(s) failed", failed, runs)
        raise typer.Exit(1)


def _schedule_interval(every: str | None, cron: str | None) -> timedelta | None:
    """``--every`` as an interval (``None`` with ``--cron``); exactly one must be given."""
    if (every is None) == (cron is None):
        raise typer.BadParameter("give exactly one of --every or --cron")
    if cron is not None and not croniter.is_valid(cron):
        raise typer.BadParameter(f"{cron!r} is not a valid cron expression")
    return parse_duration(every) if every is not None else None


def _scheduled_run(
    settings: Settings,
    options: JobOptions,
    then: Callable[[JobResult], None],
    retrained: list[dict[str, Any]],
    counts: tuple[int, int],
) -> bool:
    """One scheduled run, reported; ``False`` when it failed (or its retrain did), logged
    with ``counts`` (failed so far, this run's number), never raised."""
    try:
        result = locked_run(settings, options, then)
        if result is not None:
            _report(result)
    except Exception:
        logger.exception(
            "drift: run failed (%d of %d so far); the schedule goes on", counts[0] + 1, counts[1]
        )
        return False
    return not (retrained and retrained[0]["status"] == "failed")


def _fire_after(last: datetime, interval: timedelta | None, cron: str | None) -> datetime:
    """The next fire after ``last`` that is still ahead: a run longer than the interval
    skips the ticks it overran."""
    fire = next_fire(last, interval, cron)
    while fire <= datetime.now(UTC):
        fire = next_fire(fire, interval, cron)
    return fire
