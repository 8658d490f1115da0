"""``mlstack replay``: send a file of rows to a running service as live traffic, then its labels.

The demo, the benchmarks and the tests drive the service through :func:`run_replay`;
the command is a thin wrapper that reads files and prints the figures (``--json``: one
JSON object, for scripts and tests). Requests go out
from ``concurrency`` async clients, optionally paced to ``rate`` requests per second,
each carrying ``batch`` rows. The request ids the service returns are kept in row order
so the labels (joined on ``data.id``) can be posted to ``/feedback`` afterwards, as
labels arriving later would be.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pipeline import environment

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.settings import Settings


@dataclass
class ReplayResult:
    """What one replay did: counts by outcome, latencies, and the id of each row served."""

    sent: int = 0
    ok: int = 0
    errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # requests with no answer, by error
    latencies: list[float] = field(default_factory=list)
    request_ids: list[str | None] = field(default_factory=list)
    labels_sent: int = 0
    labels_accepted: int = 0
    seconds: float = 0.0

    @property
    def server_errors(self) -> int:
        """Requests answered 5xx, or with no answer at all."""
        return sum(n for status, n in self.statuses.items() if status >= 500 or status == 0)

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(int(q / 100 * len(ordered)), len(ordered) - 1)]

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "statuses": dict(self.statuses),
            "failures": dict(self.failures),
            "p50_ms": round(self.percentile(50) * 1000, 2),
            "p99_ms": round(self.percentile(99) * 1000, 2),
            "requests_per_second": round(self.sent / self.seconds, 1) if self.seconds else 0.0,
            "labels_sent": self.labels_sent,
            "labels_accepted": self.labels_accepted,
        }


def feature_records(frame: pd.DataFrame, settings: Settings) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: the schema's features with plain types, None for missing."""
    from pipeline.schema import coerce_features

    features = coerce_features(frame, settings.data).astype(object)
    records = features.where(features.notna(), None).to_dict("records")
    return [{str(key): value for key, value in record.items()} for record in records]


async def run_replay(
    url: str,
    rows: Sequence[dict[str, Any]],
    *,
    concurrency: int = 8,
    batch: int = 1,
    rate: float | None = None,
    timeout: float = 60.0,
    show_progress: bool = False,
) -> ReplayResult:
    """POST ``rows`` to ``{url}/predict`` in requests of ``batch`` rows; keep the ids returned."""
    import httpx
    from rich.progress import Progress

    chunks = [list(rows[i : i + batch]) for i in range(0, len(rows), batch)]
    result = ReplayResult(request_ids=[None] * len(rows))
    next_chunk = iter(range(len(chunks)))
    started = time.perf_counter()
    # Idle connections are dropped by the client after 2 s, before the server's 5 s
    # keep-alive timeout can close one under a request being sent on it; retries cover
    # only connection set-up, when no request has reached the server.
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=2.0
    )
    transport = httpx.AsyncHTTPTransport(limits=limits, retries=2)
    with Progress(disable=not show_progress, transient=False) as progress:
        task = progress.add_task("replaying", total=len(rows))
        async with httpx.AsyncClient(base_url=url, timeout=timeout, transport=transport) as client:

            async def worker() -> None:
                for index in next_chunk:
                    if rate:
                        delay = started + index / rate - time.perf_counter()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    chunk = chunks[index]
                    sent = time.perf_counter()
                    try:
                        response = await client.post("/predict", json={"instances": chunk})
                        status = response.status_code
                    except httpx.HTTPError as error:
                        status = 0
                        result.failures[type(error).__name__] += 1
                    result.latencies.append(time.perf_counter() - sent)
                    result.sent += 1
                    result.statuses[status] += 1
                    if status == 200:
                        result.ok += 1
                        first = index * batch
                        for offset, item in enumerate(response.json()["predictions"]):
                            result.request_ids[first + offset] = item["request_id"]
                    else:
                        result.errors += 1
                    progress.advance(task, len(chunk))

            await asyncio.gather(*(worker() for _ in range(max(concurrency, 1))))
    result.seconds = time.perf_counter() - started
    return result


async def send_labels(
    url: str, labels: Sequence[tuple[str, Any]], *, batch: int = 1000, timeout: float = 60.0
) -> tuple[int, int]:
    """POST ``(request_id, label)`` pairs to ``{url}/feedback``; return (sent, accepted).

    A class label goes as its one spelling (``"1"``), a numeric target (a float) as a JSON
    number. With ``MLSTACK_FEEDBACK_TOKEN`` in the environment, it is sent as the bearer
    token.
    """

    import httpx

    token = os.environ.get(environment.FEEDBACK_TOKEN)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    sent = accepted = 0
    async with httpx.AsyncClient(base_url=url, timeout=timeout, headers=headers) as client:
        for start in range(0, len(labels), batch):
            chunk = labels[start : start + batch]
            body = {"labels": [{"request_id": r, "label": _wire(v)} for r, v in chunk]}
            response = await client.post("/feedback", json=body)
            sent += len(chunk)
            if response.status_code == 200:
                accepted += int(response.json()["accepted"])
    return sent, accepted


def _wire(label: Any) -> Any:
    """A label as ``/feedback`` takes it: a number stays a number, a class its spelling."""
    from pipeline.labels import normalize_label

    return label if isinstance(label, float) else normalize_label(label)


def labels_by_id(frame: pd.DataFrame, labels: pd.DataFrame, settings: Settings) -> pd.Series:
    """The label of each row of ``frame`` (by position), found in ``labels`` by ``data.id``."""
    import pandas as pd

    data = settings.data
    if data.id is None or data.id not in frame or data.id not in labels:
        raise typer.BadParameter(f"joining labels needs the id column {data.id!r} in both files")
    by_id = labels.drop_duplicates(data.id).set_index(data.id)[data.target]
    return pd.Series(by_id.reindex(frame[data.id].to_numpy()).to_numpy())


def _labels(labels: pd.Series, settings: Settings) -> list[Any]:
    """Labels to send: floats for a numeric target (sent as JSON numbers), else as read."""
    return labels.astype("float64").tolist() if settings.data.is_regression else labels.tolist()


def replay_frame(
    url: str,
    frame: pd.DataFrame,
    labels: pd.Series | None,
    settings: Settings,
    **options: Any,
) -> ReplayResult:
    """Send ``frame``'s rows, then each served row's label (``labels``, by position) as feedback.

    ``options`` go to :func:`run_replay` (concurrency, batch, rate, show_progress).
    """
    result = asyncio.run(run_replay(url, feature_records(frame, settings), **options))
    if labels is not None:
        pairs = [
            (request_id, label)
            for request_id, label in zip(result.request_ids, _labels(labels, settings), strict=True)
            if request_id is not None and label is not None and label == label
        ]
        result.labels_sent, result.labels_accepted = asyncio.run(send_labels(url, pairs))
    return result


def rows_to_replay(
    settings: Settings,
    file: Path | None,
    scenario: str | None,
    labels: Path | None,
    limit: int | None,
) -> tuple[pd.DataFrame, pd.Series | None]:
    """The rows (and their labels, if any) of ``file`` or of ``scenario``, the first ``limit``."""
    from mlstack import scenarios
    from pipeline.io import read_table

    if scenario is not None:
        if labels is not None:
            raise typer.BadParameter("a scenario brings its own labels: drop --labels")
        try:
            frame, truth = scenarios.load(settings, scenario)
        except scenarios.ScenarioError as error:
            raise typer.BadParameter(str(error)) from None
    else:
        assert file is not None
        frame = read_table(file)
        truth = None if labels is None else labels_by_id(frame, read_table(labels), settings)
    if limit is not None:
        frame = frame.head(limit)
        truth = None if truth is None else truth.head(limit)
    return frame, truth


def show_figures(result: ReplayResult, *, labeled: bool) -> None:
    """Sent, ok, errors, latency and rate for a person (``--json`` prints the summary)."""
    from mlstack.output import console

    summary = result.summary()
    out = console()
    accepted = f"  labels {result.labels_accepted}/{result.labels_sent}"
    out.print(
        f"sent {summary['sent']}  ok {summary['ok']}  errors {summary['errors']}  "
        f"p50 {summary['p50_ms']} ms  p99 {summary['p99_ms']} ms  "
        f"({summary['requests_per_second']} req/s)" + (accepted if labeled else "")
    )
    if result.errors:
        out.print(f"errors by status: {dict(result.statuses)} {dict(result.failures)}")


def replay(
    file: Annotated[
        Path | None, typer.Argument(help="Parquet or CSV rows with the feature columns.")
    ] = None,
    url: Annotated[str, typer.Option(help="The service's base URL.")] = "http://127.0.0.1:3000",
    rate: Annotated[
        float | None, typer.Option(help="Requests per second; unpaced if omitted.")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 8,
    batch: Annotated[int, typer.Option(min=1, help="Rows per request.")] = 1,
    labels: Annotated[
        Path | None, typer.Option(help="Labels file joined on data.id; posted to /feedback.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Send only the first N rows.")] = None,
    scenario: Annotated[
        str | None,
        typer.Option(help="Replay a scenario of params.yaml (rows, labels, injected drift)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the figures as one JSON object, nothing else.")
    ] = False,
) -> None:
    """Replay a file of rows (or a scenario) against a running service, then post the labels.

    Prints sent, ok, errors and p50/p99 latency; exits 1 if any request got a 5xx.
    """
    from pipeline.settings import load_settings_or_exit

    if (file is None) == (scenario is None):
        raise typer.BadParameter("give either FILE or --scenario NAME")
    settings = load_settings_or_exit()
    frame, truth = rows_to_replay(settings, file, scenario, labels, limit)
    result = replay_frame(
        url,
        frame,
        truth,
        settings,
        concurrency=concurrency,
        batch=batch,
        rate=rate,
        show_progress=not as_json,
    )
    if as_json:
        typer.echo(json.dumps(result.summary()))
    else:
        show_figures(result, labeled=truth is not None)
    if result.server_errors:
        raise typer.Exit(1)
