"""Setup (m) of ``bench/serving.py``: MLServer with its scikit-learn runtime, what a team
would pick instead of writing a service (Seldon's MLServer, V2 inference protocol).

MLServer does not co-install with the project's lock (it pins fastapi 0.115, the lock
has 0.165), so it runs from a tool environment of its own, made with uv under
``.bench/mlserver`` (gitignored) from ``bench/mlserver-requirements.txt``, with
scikit-learn, numpy, scipy, pandas and joblib at the project's own versions, so that
the model it loads is the same fitted object.

The same model: ``mlserver_sklearn.SKLearnModel`` loads only joblib or pickle files, and
the project stores skops. The champion is loaded the project's way (skops, reviewed
types) and written with joblib into the benchmark's temporary folder, and nowhere else;
before any load runs, MLServer's answer to a request is compared with the champion's own
``predict_proba`` on the same rows.

MLServer's settings, as a team would deploy it: adaptive batching on
(``max_batch_size`` as the service's, ``max_batch_time`` from ``--mlserver-batch-ms``),
``parallel_workers`` as the service's worker count, ``debug`` off (on by default, it logs
every request), Prometheus metrics on (its default), requests as pandas columns
(``content_type: pd``) asking for ``predict_proba``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.harness import ROOT, free_port

MODEL = "employment"
PATH = f"/v2/models/{MODEL}/infer"
READY = "/v2/health/ready"
REQUIREMENTS = ROOT / "bench" / "mlserver-requirements.txt"
VENV = ROOT / ".bench" / "mlserver"
# the model's own stack at the project's versions: joblib loads the fitted objects as
# the project fitted them
SAME_AS_PROJECT = ("scikit-learn", "numpy", "scipy", "pandas", "joblib")


def uv() -> str:
    """The project environment's own uv (a dependency), else the one on PATH."""
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        sys.exit("uv is needed to make MLServer's tool environment (make install brings it)")
    return found


def environment(venv: Path = VENV) -> Path:
    """MLServer's tool environment (made on first use): the path of its ``mlserver``."""
    program = venv / "bin" / "mlserver"
    pins = [f"{name}=={version(name)}" for name in SAME_AS_PROJECT]
    stamp = venv / "mlstack-pins.txt"
    wanted = "\n".join([REQUIREMENTS.read_text().strip(), *pins])
    if program.exists() and stamp.exists() and stamp.read_text() == wanted:
        return program
    print(f"making MLServer's tool environment in {venv} (uv)", file=sys.stderr)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    install = [uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python")]
    try:
        subprocess.run(
            [uv(), "venv", "--quiet", "--clear", "--python", python, str(venv)], check=True
        )
        subprocess.run([*install, "-r", str(REQUIREMENTS), *pins], check=True)
    except subprocess.CalledProcessError as error:
        sys.exit(
            f"could not make MLServer's tool environment in {venv} ({error}); "
            "--setups abcd runs the benchmark without MLServer"
        )
    stamp.write_text(wanted)
    return program


def model_folder(model: Any, work: Path, workers: int, batch_size: int, batch_ms: float) -> Path:
    """MLServer's model repository: its settings.json, and a folder for the model with
    model-settings.json and model.joblib."""
    import joblib

    folder = work / "mlserver"
    (folder / MODEL).mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / MODEL / "model.joblib")
    (folder / MODEL / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "champion"},
                "max_batch_size": batch_size,
                "max_batch_time": batch_ms / 1000,
            },
            indent=2,
        )
    )
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "debug": False,
                "host": "127.0.0.1",
                "parallel_workers": workers,
                "metrics_dir": str(work / "mlserver-metrics"),
                "environments_dir": str(work / "mlserver-envs"),
            },
            indent=2,
        )
    )
    return folder


def command(program: Path, folder: Path) -> list[str]:
    return [str(program), "start", str(folder)]


def env(base: dict[str, str], port: int, model_threads: int) -> dict[str, str]:
    out = dict(base)
    out.update(
        MLSERVER_HTTP_PORT=str(port),
        MLSERVER_GRPC_PORT=str(free_port()),
        MLSERVER_METRICS_PORT=str(free_port()),
        # the service caps OpenMP at serving.model_threads per call; MLServer gets the same
        OMP_NUM_THREADS=str(model_threads),
    )
    for key in list(out):
        if key.startswith(("VIRTUAL_ENV", "PYTHONHOME")):
            out.pop(key)
    return out


def body(rows: Sequence[dict[str, Any]], numerical: Sequence[str]) -> str:
    """A V2 inference request of ``rows``: one input per column, decoded as a pandas frame."""
    columns = list(rows[0])
    inputs = []
    for column in columns:
        values = [row[column] for row in rows]
        number = column in numerical
        inputs.append(
            {
                "name": column,
                "shape": [len(rows)],
                "datatype": "FP64" if number else "BYTES",
                "data": values,
            }
        )
    return json.dumps(
        {
            "parameters": {"content_type": "pd"},
            "inputs": inputs,
            "outputs": [{"name": "predict_proba"}],
        }
    )


def probabilities(answer: dict[str, Any]) -> list[list[float]]:
    """The ``predict_proba`` rows of a V2 answer."""
    output = next(o for o in answer["outputs"] if o["name"] == "predict_proba")
    width = output["shape"][-1]
    data = output["data"]
    return [data[i : i + width] for i in range(0, len(data), width)]


def same_answers(
    url: str, rows: Sequence[dict[str, Any]], model: Any, numerical: Sequence[str]
) -> float:
    """The largest difference between MLServer's probabilities and the champion's own
    ``predict_proba`` on ``rows``; exits if MLServer does not answer."""
    import httpx
    import numpy as np

    from serving.scoring import frame

    response = httpx.post(
        f"{url}{PATH}",
        content=body(rows, numerical),
        headers={"content-type": "application/json"},
        timeout=60,
    )
    if response.status_code != 200:
        sys.exit(f"MLServer answered {response.status_code}: {response.text[:2000]}")
    theirs = np.asarray(probabilities(response.json()))
    ours = model.predict_proba(frame(rows, list(rows[0]), numerical))
    return float(np.abs(theirs - ours).max())
