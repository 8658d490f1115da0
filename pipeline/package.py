"""Stage 5, package: the current champion into BentoML's model store, then a Bento.

The import and the build live in ``pipeline/bento.py`` (``mlstack model rollback``
imports a champion too); this stage finds the champion, runs both and writes
``reports/package.json``. The Bento is built offline (``lock_packages: false``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from pipeline.bento import build_bento, import_champion
from pipeline.io import read_json, write_json
from pipeline.paths import PACKAGE_REPORT, PROMOTION_REPORT
from pipeline.registry import champion_version
from pipeline.settings import Settings, load_settings_or_exit
from pipeline.tracking import champion_uri, client, find_champion


class NoChampion(RuntimeError):
    """The alias points at no version: the gate refused every model so far."""


@dataclass(frozen=True)
class Packaged:
    model_tag: str
    bento_tag: str
    registered_model: str
    version: str
    run_id: str


def package(settings: Settings, *, bento: bool = True) -> Packaged:
    """Import the champion and, unless ``bento`` is false, build the Bento that serves it.

    Without a Bento the model alone is in the store, for a server started straight from
    the repository (``bentoml serve serving.service:Classifier``) with a BentoML store of
    its own, as the benchmarks and the integration tests do.
    """
    registry = client(settings)
    if champion_version(registry, settings.model.name, settings.promote.alias) is None:
        raise NoChampion(_refused(settings))
    champion = find_champion(registry, settings)
    model = import_champion(settings, champion)
    built = str(build_bento(settings.root).tag) if bento else ""
    return Packaged(str(model.tag), built, champion.name, champion.version, champion.run_id)


def _refused(settings: Settings) -> str:
    """What to tell a user whose first model the gate refused, from the gate's own report."""
    report = settings.path(PROMOTION_REPORT)
    why = read_json(report).get("reason", "") if report.exists() else ""
    because = f" ({why})" if why else ""
    return (
        f"package: the gate refused the first model{because}; nothing to package: "
        f"{settings.model.name}@{settings.promote.alias} points at no version "
        "(loosen promote.threshold in params.yaml or improve the model, then dvc repro)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-only",
        action="store_true",
        help="import the champion into BentoML's store and print its tag; no Bento, no report",
    )
    args = parser.parse_args(argv)
    settings = load_settings_or_exit()
    try:
        packaged = package(settings, bento=not args.model_only)
    except NoChampion as refused:
        raise SystemExit(str(refused)) from None
    if args.model_only:
        print(packaged.model_tag)
        return
    write_json(
        {"champion": champion_uri(settings), **asdict(packaged)}, settings.path(PACKAGE_REPORT)
    )
    print(f"packaged {packaged.registered_model} v{packaged.version} as {packaged.bento_tag}")


if __name__ == "__main__":
    main()
