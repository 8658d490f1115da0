"""The champion into BentoML's model store, and the Bento built around it.

Shared by the package stage, ``mlstack model rollback`` and the service (which declares
the model by :func:`bento_model_name`). The model is imported in MLflow's own folder
format (``bentoml.mlflow.import_model``), so the service loads the very skops file the
train stage logged; nothing is re-pickled. The registry's name, version and run id
travel as model labels: every response and metric names them; so does a regressor's
interval (its version's tags).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from pipeline.interval import Interval
from pipeline.paths import BENTOFILE
from pipeline.settings import Settings
from pipeline.tracking import Champion, client, download_model, tracking_uri


def bento_model_name(settings: Settings) -> str:
    """BentoML tags are lowercase; the registry name may not be."""
    return settings.model.name.lower()


def import_champion(settings: Settings, champion: Champion) -> Any:
    """Copy the champion's MLflow model folder into the BentoML store under a fresh version.

    A fresh version each time makes ``<name>:latest`` the last packaged champion, which
    is what the service declares, so packaging after a rollback serves the old model.
    The folder is downloaded from the settings' store first: no MLflow global is used.
    """
    import bentoml

    labels = {
        "registered_model": champion.name,
        "version": champion.version,
        "run_id": champion.run_id,
    }
    # A regressor's interval travels with its version (pipeline/interval.py): the service
    # reads it from these labels.
    tags = client(settings).get_model_version(champion.name, champion.version).tags
    interval = Interval.from_tags(tags)
    if interval is not None:
        labels.update(interval.tags())
    with tempfile.TemporaryDirectory(prefix="mlstack-package-") as scratch:
        folder = download_model(
            f"models:/{champion.name}/{champion.version}", tracking_uri(settings), scratch
        )
        return bentoml.mlflow.import_model(
            bento_model_name(settings), model_uri=str(folder), labels=labels, metadata=dict(labels)
        )


def build_bento(root: Path) -> Any:
    """The Bento of ``root``'s ``bentofile.yaml``, built offline."""
    import bentoml

    return bentoml.bentos.build_bentofile(str(root / BENTOFILE), build_ctx=str(root))
