"""The package stage: the current champion into BentoML's model store, then a Bento.

The model is imported in MLflow's own format (``bentoml.mlflow.import_model``), so the
service loads it with ``mlflow.sklearn.load_model`` and keeps ``predict_proba``; nothing
is re-pickled. The registry's name, version and run id travel as model labels: every
response and metric names them. The Bento is built offline (``lock_packages: false``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.settings import Settings, load_settings
from pipeline.tracking import champion_uri, configure

BENTOFILE = "bentofile.yaml"
REPORT = "reports/package.json"


@dataclass(frozen=True)
class Champion:
    """The registered model version the champion alias points at."""

    name: str
    version: str
    run_id: str


@dataclass(frozen=True)
class Packaged:
    model_tag: str
    bento_tag: str
    registered_model: str
    version: str
    run_id: str


def bento_model_name(settings: Settings) -> str:
    """BentoML tags are lowercase; the registry name may not be."""
    return settings.model.name.lower()


def find_champion(settings: Settings) -> Champion:
    from mlflow import MlflowClient

    client = MlflowClient()
    found = client.get_model_version_by_alias(settings.model.name, settings.promote.alias)
    return Champion(name=found.name, version=str(found.version), run_id=str(found.run_id or ""))


def import_champion(settings: Settings, champion: Champion) -> Any:
    """Copy the champion's MLflow model folder into the BentoML store under a fresh version.

    A fresh version each time makes ``<name>:latest`` the last packaged champion, which
    is what the service declares, so packaging after a rollback serves the old model.
    """
    import bentoml

    labels = {
        "registered_model": champion.name,
        "version": champion.version,
        "run_id": champion.run_id,
    }
    return bentoml.mlflow.import_model(
        bento_model_name(settings),
        model_uri=f"models:/{champion.name}/{champion.version}",
        labels=labels,
        metadata=dict(labels),
    )


def build_bento(root: Path) -> Any:
    import bentoml

    return bentoml.bentos.build_bentofile(str(root / BENTOFILE), build_ctx=str(root))


def package(settings: Settings) -> Packaged:
    """Import the champion and build the Bento that serves it."""
    configure(settings)
    champion = find_champion(settings)
    model = import_champion(settings, champion)
    bento = build_bento(settings.root)
    return Packaged(
        str(model.tag), str(bento.tag), champion.name, champion.version, champion.run_id
    )


def import_only(settings: Settings) -> str:
    """The champion into BentoML's model store alone, no Bento, no report: its model tag.

    For a server started straight from the repository (``bentoml serve
    serving.service:Classifier``) with a BentoML store of its own, as the benchmarks and
    the integration tests do.
    """
    configure(settings)
    return str(import_champion(settings, find_champion(settings)).tag)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-only",
        action="store_true",
        help="import the champion into BentoML's store and print its tag; no Bento, no report",
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.model_only:
        print(import_only(settings))
        return
    packaged = package(settings)
    report = settings.path(REPORT)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(
        json.dumps({"champion": champion_uri(settings), **asdict(packaged)}, indent=2)
    )
    print(f"packaged {packaged.registered_model} v{packaged.version} as {packaged.bento_tag}")


if __name__ == "__main__":
    main()
