"""Every file name the project reads or writes, relative to the project root, once.

Stages, the service, the drift job and the tests build paths from these names with
``Settings.path`` (which resolves them against the folder that holds ``params.yaml``), so
no module needs another module (least of all a stage) for a file name.
"""

from __future__ import annotations

PARAMS_FILE = "params.yaml"
# DVC's record of the pipeline state; its digest is a lineage tag of every trained model.
DVC_LOCK = "dvc.lock"

# Labeled production rows `mlstack retrain` took from the capture log (git-tracked, empty
# until the first retrain; dvc.lock records the version each run of prepare and train read).
RECENT_FILE = "data/retrain/recent.parquet"

# Stage outputs, in pipeline order.
TRAIN_FILE = "data/prepared/train.parquet"
TEST_FILE = "data/prepared/test.parquet"
# The recent rows held out for the gate (never trained on); empty without recent rows.
RECENT_HOLDOUT_FILE = "data/prepared/recent_holdout.parquet"
TRAIN_REPORT = "reports/train.json"
METRICS_FILE = "reports/metrics.json"
PLOTS_DIR = "reports/plots"
REFERENCE_FILE = "data/reference/reference.parquet"
# The features of the rows the champion was trained on (its train split), beside the
# reference set: with ``drift.reference: all`` data drift compares against both.
INPUTS_FILE = "data/reference/inputs.parquet"
# The champion's permutation importance per feature, beside the reference set it goes with.
IMPORTANCE_FILE = "data/reference/importance.json"
PROMOTION_REPORT = "reports/promotion.json"
PACKAGE_REPORT = "reports/package.json"
BENTOFILE = "bentofile.yaml"

# The embedded MLflow store, used when MLFLOW_TRACKING_URI is not set.
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"

# The drift job's files: inside ``drift.reports`` the lock two runs share and the pointer
# at the newest complete run; inside each run's folder its report and summary.
DRIFT_LOCK_FILE = ".drift.lock"
# Calibrations (column thresholds, the domain classifier's band) kept between runs.
DRIFT_CALIBRATION_FOLDER = ".calibration"
DRIFT_LATEST_FILE = "latest.json"
DRIFT_REPORT_FILE = "report.html"
DRIFT_PERFORMANCE_REPORT_FILE = "performance.html"
DRIFT_SUMMARY_FILE = "summary.json"
# The report's plots as PNG files of the run folder (and so of its MLflow monitoring run).
DRIFT_PERFORMANCE_PLOT = "plots/performance_history.png"
DRIFT_COVERAGE_PLOT = "plots/coverage_history.png"
DRIFT_SCORES_PLOT = "plots/drift_scores.png"
