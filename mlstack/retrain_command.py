"""``mlstack retrain``: learn from the labeled rows the service captured, behind the gate.

The labeled rows of a capture window (the served inputs joined with the labels that came
back through ``/feedback``, read by the drift job's own reader) become a new version of
``data/retrain/recent.parquet``, the file the ``prepare`` stage folds into the training
data (``retrain:`` in ``params.yaml`` says how). The file carries its lineage (capture
window, rows read, labeled rows, what triggered it) in its Parquet metadata, the ``train``
stage tags the MLflow run with it, and ``dvc.lock`` records the file's MD5 beside the
model it trained. Then ``dvc repro`` runs the usual stages: the gate judges the candidate
on recent rows held out from training as well as on the original test split.

Exit status: 0 when the pipeline ran (promoted or rejected: the decision is in the
output), 2 when refused before anything was written (too few labeled rows, rows that fail
the schema, a bad window, a bad params file), 1 when the pipeline failed. A retrain and a
drift run never overlap: both take the drift job's lock.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlstack.children import run_in_group
from mlstack.window import parse_window
from pipeline.settings import load_settings_or_exit

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.settings import DataSettings, Settings

EXIT_REFUSED = 2


class Refused(ValueError):
    """The retrain cannot start (too few labeled rows, rows that fail the schema): nothing
    was written and the champion is untouched."""


class PipelineFailed(RuntimeError):
    """``dvc repro`` exited non-zero; the message names its exit status."""


@dataclass
class RetrainResult:
    """What one retrain did: the rows it used, and the gate's decision."""

    status: str  # "retrained", or "unchanged" when dvc found nothing to re-run
    recent: dict[str, Any]
    promotion: dict[str, Any] = field(default_factory=dict)
    model_version: str | None = None
    champion_version: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "decision": self.promotion.get("decision"),
            "reason": self.promotion.get("reason"),
            "model_version": self.model_version,
            "champion_version": self.champion_version,
            "recent": self.recent,
            "promotion": self.promotion,
        }


def labeled_rows(window: pd.DataFrame, data: DataSettings) -> pd.DataFrame:
    """The window's rows whose label came back: request id, time, serving version, the
    features and the label (the capture log's columns, nothing the model produced)."""
    from monitoring.capture import MODEL_VERSION, REQUEST_ID, TIMESTAMP

    labeled = window[window[data.target].notna()]
    columns = [REQUEST_ID, TIMESTAMP, MODEL_VERSION, *data.features.all, data.target]
    return labeled[columns].reset_index(drop=True)


def assemble(
    settings: Settings,
    since: datetime | None,
    until: datetime,
    min_labeled: int,
    trigger: str,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The labeled rows of [since, until) and their lineage; :class:`Refused` when too few."""
    from monitoring.capture import MODEL_VERSION, capture_path, read_window
    from pipeline.schema import SchemaError, validate

    window = read_window(capture_path(settings), settings, since=since, until=until)
    rows = labeled_rows(window, settings.data)
    where = f"[{since.isoformat() if since else 'start'}, {until.isoformat()})"
    if len(rows) < min_labeled:
        raise Refused(
            f"{len(rows)} labeled row(s) in the capture window {where} ({len(window)} served), "
            f"fewer than the {min_labeled} needed (--min-labeled, retrain.min_labeled_rows): "
            "nothing written, the champion is untouched"
        )
    try:
        validate(rows, settings.data)
    except SchemaError as error:
        raise Refused(f"the labeled rows of {where} fail the schema: {error}") from None
    lineage = {
        "capture": capture_path(settings),
        "since": since.isoformat() if since else None,
        "until": until.isoformat(),
        "window_rows": len(window),
        "labeled_rows": len(rows),
        "served_by": ",".join(sorted({str(v) for v in rows[MODEL_VERSION]})),
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "trigger": trigger,
    }
    return rows, lineage


def write_recent(rows: pd.DataFrame, lineage: dict[str, Any], settings: Settings) -> str:
    """``data/retrain/recent.parquet`` with its lineage in the schema metadata, written then
    renamed (a reader never sees half a file); returns its MD5, as dvc.lock records it."""
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.lineage import RECENT_LINEAGE_KEY
    from pipeline.paths import RECENT_FILE

    path = settings.path(RECENT_FILE)
    table = pa.Table.from_pandas(rows, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), RECENT_LINEAGE_KEY: json.dumps(lineage).encode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    pq.write_table(table.replace_schema_metadata(metadata), temporary)
    os.replace(temporary, path)
    return hashlib.md5(path.read_bytes()).hexdigest()


def run_pipeline(settings: Settings) -> None:
    """``dvc repro`` in the project, its output on stderr (stdout stays for ``--json``);
    a SIGTERM or SIGINT to this command stops it and its stages too."""
    code = run_in_group(
        [sys.executable, "-m", "dvc", "repro"], cwd=settings.root, stdout=sys.stderr
    )
    if code != 0:
        raise PipelineFailed(f"dvc repro exited {code} (its output is above)")


def retrain(
    settings: Settings,
    since: datetime | None,
    until: datetime | None,
    min_labeled: int,
    trigger: str = "mlstack retrain",
) -> RetrainResult:
    """Assemble, write and run the pipeline; the caller holds the drift job's lock."""
    from pipeline.io import read_json
    from pipeline.paths import PROMOTION_REPORT, RECENT_FILE, TRAIN_REPORT

    end = until or datetime.now(UTC)
    rows, lineage = assemble(settings, since, end, min_labeled, trigger)
    md5 = write_recent(rows, lineage, settings)
    report = settings.path(PROMOTION_REPORT)
    before = report.stat().st_mtime_ns if report.exists() else None
    run_pipeline(settings)
    recent = {"path": RECENT_FILE, "md5": md5, **lineage}
    if not report.exists() or report.stat().st_mtime_ns == before:
        return RetrainResult("unchanged", recent)
    promotion = read_json(report)
    trained = read_json(settings.path(TRAIN_REPORT))
    champion = promotion["candidate_version"] if promotion["decision"] == "promoted" else None
    return RetrainResult(
        "retrained",
        recent,
        promotion,
        model_version=str(trained["model_version"]),
        champion_version=champion or promotion.get("champion_version"),
    )


def locked_retrain(
    settings: Settings, since: datetime | None, until: datetime | None, min_labeled: int
) -> RetrainResult | None:
    """:func:`retrain` under the drift job's lock; ``None`` when a drift run or another
    retrain holds it."""
    from filelock import FileLock, Timeout

    from monitoring.drift_job import lock_path

    path = lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path), timeout=0):
            return retrain(settings, since, until, min_labeled)
    except Timeout:
        return None


SinceOpt = Annotated[str | None, typer.Option(help="Window start, ISO 8601 (UTC if no zone).")]
UntilOpt = Annotated[str | None, typer.Option(help="Window end, ISO 8601 (default: now).")]


def retrain_command(
    since: SinceOpt = None,
    until: UntilOpt = None,
    last: Annotated[
        str | None,
        typer.Option(help="Window length back from --until, e.g. 24h (default: retrain.window)."),
    ] = None,
    min_labeled: Annotated[
        int | None,
        typer.Option(min=1, help="Refuse below this many labeled rows (retrain.min_labeled_rows)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the outcome as one JSON object, nothing else.")
    ] = False,
) -> None:
    """Retrain on the labeled rows of a capture window, then let the gate decide.

    Runs `dvc repro` in the project: the new model becomes champion only if it beats the
    current one on recent rows held out from training and keeps promote.threshold on the
    original test split.
    """
    settings = load_settings_or_exit()
    if since is None and last is None:
        last = settings.retrain.window
    start, end = parse_window(since, until, last)
    needed = min_labeled if min_labeled is not None else settings.retrain.min_labeled_rows

    def refuse(message: str, code: int) -> typer.Exit:
        if as_json:
            typer.echo(json.dumps({"status": "refused", "reason": message}))
        typer.echo(f"retrain refused: {message}", err=True)
        return typer.Exit(code)

    try:
        result = locked_retrain(settings, start, end, needed)
    except Refused as error:
        raise refuse(str(error), EXIT_REFUSED) from None
    except Exception as error:
        if as_json:
            typer.echo(json.dumps({"status": "failed", "reason": str(error)}))
        typer.echo(f"retrain failed: {error}", err=True)
        raise typer.Exit(1) from error
    if result is None:
        raise refuse("a drift run or another retrain holds the lock; try again later", 1)
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
        return
    recent = result.recent
    typer.echo(
        f"retrain: {recent['labeled_rows']} labeled rows of {recent['window_rows']} served "
        f"({recent['since'] or 'start'} to {recent['until']}) -> {recent['path']} "
        f"(md5 {recent['md5']})"
    )
    if result.status == "unchanged":
        typer.echo("retrain: the pipeline was up to date (the same rows as the last retrain)")
    else:
        typer.echo(
            f"gate: {result.promotion['decision']} v{result.model_version}: "
            f"{result.promotion['reason']}"
        )
