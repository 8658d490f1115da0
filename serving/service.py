"""The prediction service: `bentoml serve` answers `/predict` and `/feedback` with the champion.

One BentoML service class. The champion is declared as a class attribute, so ``bentoml
build`` packs it into the Bento, and is loaded in ``__init__`` in its MLflow format
(``predict_proba`` included). Each worker process:

- validates requests with a pydantic model built from ``params.yaml`` plus the
  categories the fitted model knows (only ``EXAMPLE_INPUT``, a sample request for the
  docs and tests, names columns; the service itself follows ``params.yaml``); a
  well-formed ``/predict`` body is decoded by orjson straight into rows and checked
  column by column against the same rules (serving/inputs.py ``RowParser``), pydantic
  taking every other body and wording its refusal;
- batches concurrent requests into one model call (serving/batching.py), scored by the
  compiled input path (serving/scoring.py: the fitted transformers as numpy, checked
  against the model at load) or, for a model it does not cover, one pandas frame per batch;
- answers with the model name and version and, per row, a label and the class
  probabilities or, for ``data.task: regression``, ``prediction`` and its split-conformal
  ``interval`` {lower, upper} (the version's interval tags, carried in the packed model's
  labels: a regressor without them does not serve); counts what it served on /metrics
  (serving/service_metrics.py), and appends every served row and feedback label to the
  capture log's local write-ahead segment before the response leaves (compaction into
  Parquet runs off the request path, monitoring/capture/writer.py);
- issues a request id per row, signed when a feedback token is set (serving/request_ids.py),
  and shows in the OpenAPI document the categories and classes its model takes
  (serving/openapi.py).

``params.yaml`` is read when this module is imported, because BentoML takes the model
tag, the worker count and the input types from the class definition; it is chosen and
overridden as everywhere else (``pipeline.settings.load_settings``: ``MLSTACK_PARAMS``,
``MLSTACK_WORKERS``, ``MLSTACK_CAPTURE_PATH``). A Bento carries its own params.yaml,
whose relative ``capture.path`` would land inside the Bento's folder: when serving a
Bento, set ``MLSTACK_CAPTURE_PATH`` (or ``MLSTACK_PARAMS``). Host and port come from
``serving`` in params.yaml unless ``BENTOML_HOST``/``BENTOML_PORT`` or ``--host``/``--port``
say otherwise. The model is loaded by ``pipeline.tracking.load_model``: skops with the
reviewed trusted types, or the service does not start. Each worker then follows the
MLflow model registry's champion alias (serving/champion.py, every
``serving.reload_seconds``): a new champion is swapped in between batches, and every
answer and captured row names the version that scored it.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, cast

import anyio
import bentoml
import numpy as np
import orjson
from pydantic import BaseModel, Field, ValidationError
from starlette.responses import Response

from monitoring.capture import (
    LABEL,
    LABELS,
    PREDICTIONS,
    REQUEST_ID,
    TIMESTAMP,
    CaptureWriter,
    ScoredBatch,
    writer_from_settings,
)
from pipeline import environment
from pipeline.bento import bento_model_name
from pipeline.labels import normalize_label
from pipeline.schema import INTERVAL_COLUMNS
from pipeline.settings import load_settings
from pipeline.tracking import Champion, load_model
from serving import service_metrics
from serving.batching import Batcher, Overloaded
from serving.champion import ChampionFollower, ServedModel, serve_model
from serving.guard import RequestGuard
from serving.inputs import (
    LabelIn,
    ParsedRows,
    RowParser,
    as_rows,
    body_model,
    decoding_body,
    error_body,
    instance_model,
    label_model,
    shown,
    unknown_categories,
)
from serving.openapi import AcceptedInputs
from serving.request_ids import RequestIds
from serving.scoring import Scorer, prepare_scorer

logger = logging.getLogger(__name__)

MLFLOW_FOLDER = "mlflow_model"  # where bentoml.mlflow.import_model puts the MLflow model

# A real 2016 production row; the docs, the OpenAPI page and the tests send it.
EXAMPLE_INPUT: dict[str, list[dict[str, Any]]] = {
    "instances": [
        {
            "AGEP": 46.0,
            "SCHL": "21",
            "MAR": "1",
            "RELP": "0",
            "DIS": "2",
            "ESP": "0",
            "CIT": "3",
            "MIG": "1",
            "MIL": "4",
            "ANC": "2",
            "NATIVITY": "1",
            "DEAR": "2",
            "DEYE": "2",
            "DREM": "2",
            "SEX": "1",
            "RAC1P": "1",
        }
    ]
}


SETTINGS = load_settings()
MAX_ROWS = SETTINGS.serving.max_rows

if TYPE_CHECKING:
    Instance = BaseModel
else:
    Instance = instance_model(SETTINGS.data)
# A class label, or a regressor's number (serving/inputs.py).
Label = label_model(SETTINGS.data)
# The bodies, with no top-level key but the one each route reads (serving/inputs.py).
# /predict decodes a well-formed body straight into rows, pydantic only what it refuses.
PREDICT_BODY = decoding_body(
    body_model("PredictRequest", "instances", Instance, MAX_ROWS),
    RowParser.of(SETTINGS.data, MAX_ROWS),
)
FEEDBACK_BODY = body_model("FeedbackRequest", "labels", Label, MAX_ROWS)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_server() -> None:
    """Have the kernel SIGKILL this worker when the ``bentoml serve`` process that started it
    dies, by any signal.

    Each worker is its own session leader, so a signal to the server's process group never
    reaches it: without this, ``kill -9`` of the server left the workers answering on its
    port (and capturing). SIGKILL loses nothing answered: every served row is already in
    its write-ahead segment, recovered at the next start.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        logger.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != parent:  # the server died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


class _NoTracebackForRefusals(logging.Filter):
    """BentoML logs every pydantic 400 as an ERROR with a full traceback (kilobytes each, a
    fuzzer fills a disk with them); the request guard logs one WARNING line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, ValidationError)


# What this worker's model accepts, for the OpenAPI document (followed by Classifier).
ACCEPTED = AcceptedInputs(
    SETTINGS.serving.reject_unknown_categories, regression=SETTINGS.data.is_regression
)


@dataclass(frozen=True)
class Scored:
    """One request's share of a model call: a request id and a predicted label (a class,
    or a regressor's number) per row, the class probabilities or the interval's bounds
    (one row per row, the columns ``served.proba_columns`` or lower, upper), and the model
    version that scored them (one per batch, whatever swaps meanwhile)."""

    request_ids: list[str]
    labels: list[Any]
    probabilities: np.ndarray
    served: ServedModel


def _answer(body: dict[str, Any]) -> Any:
    """A 200 JSON response, serialised once with orjson. A returned dict would be
    validated into BentoML's output model, dumped, then dumped again as JSON: three walks
    over every prediction. The shape is the one the signature declares (checked against
    the OpenAPI document by tests/integration/test_openapi_contract.py)."""
    return Response(orjson.dumps(body), media_type="application/json")


def _reject(status: int, summary: str, detail: list[dict[str, Any]]) -> Any:
    """A JSON error response; BentoML passes a returned ``Response`` through untouched."""
    from starlette.responses import JSONResponse

    return JSONResponse(error_body(summary, detail), status_code=status)


@bentoml.service(
    name="mlstack",
    workers=SETTINGS.serving.workers,
    http={"host": SETTINGS.serving.host, "port": SETTINGS.serving.port},
    traffic={"timeout": 60},
    logging={"access": {"enabled": SETTINGS.serving.access_log}},
)
class Classifier:
    """The champion classifier: predictions, feedback labels, metrics and capture."""

    champion = bentoml.models.BentoModel(f"{bento_model_name(SETTINGS)}:latest")

    def __init__(self) -> None:
        die_with_server()
        logging.getLogger("bentoml._internal.server.http_app").addFilter(_NoTracebackForRefusals())
        self.settings = SETTINGS
        self._thread_state = threading.local()
        self.request_ids = RequestIds(os.environ.get(environment.FEEDBACK_TOKEN))
        stored = self.champion
        labels = stored.info.labels
        packed = Champion(
            name=labels.get("registered_model", self.settings.model.name),
            version=labels.get("version", str(stored.tag.version)),
            run_id=labels.get("run_id", ""),
            tags=dict(labels),  # a regressor's interval travels in the labels
        )
        if packed.name != self.settings.model.name:
            logger.warning(
                "the packed model is %s v%s, not a version of %s (model.name): a Bento of "
                "another project? the follower swaps in %s@%s when the registry names one",
                packed.name,
                packed.version,
                self.settings.model.name,
                self.settings.model.name,
                self.settings.promote.alias,
            )
        # The packed model serves first; the follower swaps in whatever the alias names.
        served = serve_model(
            load_model(stored.path_of(MLFLOW_FOLDER)), packed, self.settings, prepare_scorer
        )
        self.follower = ChampionFollower(
            self.settings, served, on_swap=ACCEPTED.follow, prepare=prepare_scorer
        )
        self.capture: CaptureWriter | None = None
        if self.settings.capture.enabled:
            self.capture = writer_from_settings(
                self.settings,
                on_written=lambda kind, n: service_metrics.CAPTURE_RECORDS.labels(kind=kind).inc(n),
                on_dropped=lambda kind, n: service_metrics.CAPTURE_DROPPED.inc(n),
                on_pending=service_metrics.CAPTURE_PENDING.set,
            ).start()
        self._batched = self._dispatcher()
        self.follower.start()
        # Everything loaded so far (libraries, the model) lives as long as the worker:
        # moved out of the collector's sight, a full collection no longer walks it, and
        # no request waits behind one that would (a tail-latency cost otherwise).
        gc.collect()
        gc.freeze()
        logger.info("serving %s version %s (run %s)", packed.name, packed.version, packed.run_id)
        if not self.request_ids.signed:
            logger.warning(
                "no %s: /feedback takes labels for any request id, from %s; set the token "
                "to accept only ids this service issued",
                environment.FEEDBACK_TOKEN,
                "anyone (serving.open_feedback)"
                if self.settings.serving.open_feedback
                else "loopback clients only",
            )

    def __is_ready__(self) -> bool:
        """``/readyz``: ready while the capture log can be written (checked at start, then
        by every compaction); a capture path that cannot be written takes the server out of
        rotation instead of filling the local disk unnoticed."""
        return self.capture is None or self.capture.healthy

    def _dispatcher(self) -> Batcher[Scored] | None:
        batching = self.settings.serving.batching
        if not batching.enabled:
            return None
        return Batcher(
            self._predict_batches,
            max_batch_size=batching.max_batch_size,
            max_latency_ms=batching.max_latency_ms,
            on_batch=service_metrics.BATCH_ROWS.observe,
        )

    def _predict_batches(self, jobs: Sequence[list[dict[str, Any]]]) -> list[Scored]:
        """One model call for many requests: one input matrix (or frame), one ``predict_proba``.

        The batch is appended to the capture log's write-ahead segment here, before any of
        its responses leave, as the arrays it already is: the compiled path's blocks of
        numbers and category codes, no per-row records or strings on the request path
        (compaction builds the Parquet).
        """
        self._limit_native_threads()
        served = self.follower.served  # read once: the whole batch is this version's
        rows = [row for job in jobs for row in job]
        scorer: Scorer = served.prepared  # the compiled input path, or the pipeline's own
        request_ids = [self.request_ids.new() for _ in rows]
        labels: list[Any]
        output, blocks = scorer.scored(rows, regressor=served.interval is not None)
        if served.interval is not None:  # a regressor: the number and its interval
            probabilities = np.column_stack(served.interval.bounds(output))
            labels = output.tolist()
        else:
            probabilities = output
            labels = [served.classes[i] for i in probabilities.argmax(axis=1).tolist()]
        if self.capture is not None:
            batch = ScoredBatch(
                timestamp=datetime.now(UTC),
                model_name=served.name,
                model_version=served.version,
                request_ids=request_ids,
                features=rows,
                predictions=labels,
                probabilities=probabilities,
                proba_columns=INTERVAL_COLUMNS if served.regressor else served.proba_columns,
                blocks=blocks,
            )
            self.capture.add(PREDICTIONS, batch)
        scored, start = [], 0
        for job in jobs:
            end = start + len(job)
            scored.append(
                Scored(request_ids[start:end], labels[start:end], probabilities[start:end], served)
            )
            start = end
        return scored

    def _limit_native_threads(self) -> None:
        """Cap OpenMP/BLAS threads in the thread that calls the model, once per thread.

        OpenMP's thread count is per calling thread, so a limit set in ``__init__`` would
        not reach the worker threads the model runs in. Two workers on two cores each
        starting an OpenMP team per call made one-row predictions several times slower.
        """
        if not getattr(self._thread_state, "limited", False):
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=self.settings.serving.model_threads)
            self._thread_state.limited = True

    async def _score(self, rows: list[dict[str, Any]]) -> Scored:
        if self._batched is not None:
            return await self._batched(rows)
        service_metrics.BATCH_ROWS.observe(len(rows))
        batches = await anyio.to_thread.run_sync(self._predict_batches, [rows])
        return batches[0]

    @bentoml.api(route="/predict", input_spec=PREDICT_BODY)  # type: ignore[untyped-decorator]
    async def predict(
        self,
        instances: Annotated[list[Instance], Field(min_length=1, max_length=MAX_ROWS)],
    ) -> dict[str, Any]:
        """Predict per instance, in order: a label and the class probabilities, or (a
        regression model) a number and its prediction interval."""
        rows: list[dict[str, Any]] = (
            instances
            if isinstance(instances, ParsedRows)
            else as_rows(instances, self.settings.data)
        )
        if self.settings.serving.reject_unknown_categories:
            # Checked against the model served now; a swap before the batch runs meets a
            # category the old one knew, which the encoder ignores (all-zero one-hot).
            unknown = unknown_categories(rows, self.follower.served.known)
            if unknown:
                refused: dict[str, Any] = _reject(400, "unknown category", unknown)
                return refused
        try:
            scored = await self._score(rows)
        except Overloaded as error:
            overloaded: dict[str, Any] = _reject(503, str(error), [])
            return overloaded
        served = scored.served
        if served.regressor:
            regressed: dict[str, Any] = self._regression_answer(scored)
            return regressed
        classes = served.classes
        predictions = [
            {
                "request_id": request_id,
                "label": label,
                "probabilities": dict(zip(classes, proba, strict=True)),
            }
            for request_id, label, proba in zip(
                scored.request_ids, scored.labels, scored.probabilities.tolist(), strict=True
            )
        ]
        tops = scored.probabilities.max(axis=1).tolist()
        for label, top in zip(scored.labels, tops, strict=True):
            served.probability[label].observe(top)
        for label, count in Counter(scored.labels).items():
            served.predicted[label].inc(count)
        answer: dict[str, Any] = _answer(
            {"model": {"name": served.name, "version": served.version}, "predictions": predictions}
        )
        return answer

    def _regression_answer(self, scored: Scored) -> Any:
        """Per row the predicted number and its split-conformal interval."""
        served = scored.served
        bounds = scored.probabilities.tolist()
        predictions = [
            {"request_id": request_id, "prediction": value, "interval": {"lower": lo, "upper": hi}}
            for request_id, value, (lo, hi) in zip(
                scored.request_ids, scored.labels, bounds, strict=True
            )
        ]
        for value in scored.labels:
            served.value.observe(value)
        return _answer(
            {"model": {"name": served.name, "version": served.version}, "predictions": predictions}
        )

    @bentoml.api(route="/feedback", input_spec=FEEDBACK_BODY)  # type: ignore[untyped-decorator]
    async def feedback(
        self, labels: Annotated[list[LabelIn], Field(min_length=1, max_length=MAX_ROWS)]
    ) -> dict[str, Any]:
        """Record the true labels of earlier predictions, joined later by request id."""
        served = self.follower.served
        known = set(served.classes)
        timestamp = datetime.now(UTC)
        records = []
        errors = []
        unmatched = 0
        for index, item in enumerate(labels):
            label = normalize_label(item.label)
            if label not in known and not served.regressor:
                errors.append(
                    {
                        "type": "unknown_class",
                        "loc": ["labels", index, "label"],
                        "msg": f"label {shown(label)} in row {index} is not one of "
                        f"{served.classes}",
                    }
                )
            if self.request_ids.issued(item.request_id):
                records.append({REQUEST_ID: item.request_id, TIMESTAMP: timestamp, LABEL: label})
            else:
                unmatched += 1
        if errors:
            refused: dict[str, Any] = _reject(400, "unknown class label", errors[:20])
            return refused
        if unmatched:  # counted and left out of the log: they would join no prediction
            service_metrics.FEEDBACK_UNMATCHED.inc(unmatched)
        if self.capture is not None and records:
            self.capture.add(LABELS, records)
        return {
            "accepted": len(records),
            "unmatched": unmatched,
            "model": {"name": served.name, "version": served.version},
        }

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]
    def flush_capture(self) -> None:
        """A graceful stop (SIGTERM) stops following the champion and compacts every captured
        row still in a write-ahead segment into Parquet; a segment that cannot be written
        now stays on disk and is recovered at the next start."""
        self.follower.stop()
        if self.capture is not None:
            self.capture.close()
            logger.info("capture log flushed on shutdown")


# The decorator turned the class into a bentoml Service; mypy still sees the class.
# The feedback token is a secret: from the environment, never from params.yaml.
cast(Any, Classifier).add_asgi_middleware(
    RequestGuard,
    max_body_bytes=SETTINGS.serving.max_body_bytes,
    feedback_token=os.environ.get(environment.FEEDBACK_TOKEN) or None,
    describe=ACCEPTED.describe,
    open_feedback=SETTINGS.serving.open_feedback,
)
