"""Every environment variable mlstack reads, named once (as MLflow's ``environment_variables.py``).

``params.yaml`` holds the knobs; the environment holds what differs between machines and must
never be committed: endpoints, credentials, and the few deployment overrides that the service
and the drift job must agree on. Code reads these names from here, never as string literals,
so a rename is one edit and ``grep`` finds every reader.
"""

from __future__ import annotations

# Which params file every command, stage and the service reads (default: the project's own).
PARAMS = "MLSTACK_PARAMS"
# Deployment overrides of ``capture.path`` and ``capture.segments``, and of the worker count.
CAPTURE_PATH = "MLSTACK_CAPTURE_PATH"
CAPTURE_SEGMENTS = "MLSTACK_CAPTURE_SEGMENTS"
WORKERS = "MLSTACK_WORKERS"
# When set, ``/feedback`` requires it as a Bearer token (and ``mlstack replay`` sends it).
FEEDBACK_TOKEN = "MLSTACK_FEEDBACK_TOKEN"
# Where the drift job pushes its series (a Prometheus Pushgateway URL).
PUSHGATEWAY_URL = "MLSTACK_PUSHGATEWAY_URL"
# How many production rows the demo replays (a smaller number makes a quicker demo).
DEMO_ROWS = "MLSTACK_DEMO_ROWS"
# MLflow's own: a tracking server instead of the project's embedded SQLite store.
MLFLOW_TRACKING_URI = "MLFLOW_TRACKING_URI"
MLFLOW_REGISTRY_URI = "MLFLOW_REGISTRY_URI"
# MLflow's own: the identity every client (pipeline, service, drift job) sends the server.
MLFLOW_TRACKING_USERNAME = "MLFLOW_TRACKING_USERNAME"
MLFLOW_TRACKING_PASSWORD = "MLFLOW_TRACKING_PASSWORD"
# The three identities' passwords, read by `mlstack auth create-users` (run as the admin).
PIPELINE_PASSWORD = "MLSTACK_PIPELINE_PASSWORD"
SERVICE_PASSWORD = "MLSTACK_SERVICE_PASSWORD"
DRIFT_PASSWORD = "MLSTACK_DRIFT_PASSWORD"
# The one S3 endpoint variable botocore, s3fs, pyarrow, dvc-s3 and MLflow all honour.
AWS_ENDPOINT_URL = "AWS_ENDPOINT_URL"

# Telemetry off for every tool the project starts, in code paths and test setups alike.
TELEMETRY_OFF = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "DVC_NO_ANALYTICS": "1",
    "EVIDENTLY_DISABLE_TELEMETRY": "1",
}
