"""The service's own Prometheus metrics, beside BentoML's request metrics on /metrics.

Module-level objects with fixed label names, as prometheus-client wants. BentoML runs
its workers in prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` is
set before a worker imports this module), so counters and histograms add up across
workers; each gauge says how its per-worker values combine.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PREDICTIONS = Counter(
    "mlstack_predictions",
    "Predictions served, by model version and predicted label.",
    ["model_version", "label"],
)
PROBABILITY = Histogram(
    "mlstack_prediction_probability",
    "Probability of the predicted label: the model's confidence in what it answered.",
    ["model_version", "label"],
    buckets=(0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
)
# A regressor's scale is unknown when this module loads (and buckets are fixed for the life
# of the process and alike in every worker): 1-2-5 steps from 0.01 to 10 million cover
# prices, amounts, durations and counts; a value at or below 0 falls in the first bucket.
VALUE_BUCKETS = (0.0, *(m * 10.0**e for e in range(-2, 7) for m in (1, 2, 5)), 1e7)
PREDICTED_VALUE = Histogram(
    "mlstack_predicted_value",
    "A regressor's predicted values, by model version.",
    ["model_version"],
    buckets=VALUE_BUCKETS,
)
# Each task's own series (by the names Prometheus shows before _total, _bucket...): the
# dashboard's panels for one task stay empty for the other.
TASK_ONLY = {
    "classification": ("mlstack_predictions", "mlstack_prediction_probability"),
    "regression": ("mlstack_predicted_value",),
}
BATCH_ROWS = Histogram(
    "mlstack_batch_rows",
    "Rows per model call: how well adaptive batching groups concurrent requests.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
INVALID_REQUESTS = Counter(
    "mlstack_invalid_requests",
    "Requests refused with a 4xx, by reason.",
    ["reason"],
)
FEEDBACK_UNMATCHED = Counter(
    "mlstack_feedback_unmatched",
    "Feedback labels for request ids this service never issued (checked only with a "
    "feedback token); not captured.",
)
MODEL_INFO = Gauge(
    "mlstack_model_info",
    "The model the service answers with (value 1).",
    ["name", "version", "run_id"],
    multiprocess_mode="livemax",
)
MODEL_RELOADS = Counter(
    "mlstack_model_reloads",
    "Champions swapped in from the registry while serving, no restart (per worker).",
)
MODEL_RELOAD_FAILURES = Counter(
    "mlstack_model_reload_failures",
    "New champions that failed to load (the old model kept serving), by reason: "
    "load (download or read), unsafe (refused by the loader), incompatible (wrong features).",
    ["reason"],
)
REGISTRY_POLL_FAILURES = Counter(
    "mlstack_registry_poll_failures",
    "Looks at the registry's champion alias that got no answer; the model served stays.",
)
CAPTURE_RECORDS = Counter(
    "mlstack_capture_records",
    "Rows written to the capture log, by kind (predictions, labels).",
    ["kind"],
)
CAPTURE_DROPPED = Counter(
    "mlstack_capture_dropped",
    "Served rows the capture log dropped: max_pending_rows pending already, or a failed append.",
)
CAPTURE_PENDING = Gauge(
    "mlstack_capture_pending_rows",
    "Rows in write-ahead segments not yet compacted into Parquet, summed over workers.",
    multiprocess_mode="livesum",
)

# Bounded set of reasons: a reason outside it is counted as "invalid".
REASONS = {
    "json_invalid": "malformed_json",
    "missing": "missing_field",
    "extra_forbidden": "extra_feature",
    "too_long": "too_many_rows",
    "too_short": "no_rows",
    "greater_than_equal": "out_of_range",
    "less_than_equal": "out_of_range",
    "finite_number": "wrong_type",
    "unknown_category": "unknown_category",
    "unknown_class": "unknown_class",
    "body_too_large": "body_too_large",
    "unauthorized": "unauthorized",
    "feedback_not_local": "feedback_not_local",
    "unsupported_media_type": "not_json",
    "unmatched_request": "unmatched_request",
}


def reason_of(error_type: str, loc: list[object] | None = None) -> str:
    """A fixed label value for one validation error type."""
    if error_type == "missing" and loc is not None and len(loc) >= 3:
        return "missing_feature"
    if error_type in REASONS:
        return REASONS[error_type]
    if error_type.endswith(("_type", "_parsing")) or error_type.startswith("union"):
        return "wrong_type"
    return "invalid"
