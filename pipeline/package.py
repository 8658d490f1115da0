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
from pipeline.io import write_json
from pipeline.paths import PACKAGE_REPORT
from pipeline.settings import Settings, load_settings_or_exit
from pipeline.tracking import champion_uri, client, find_champion


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
    champion = find_champion(client(settings), settings)
    model = import_champion(settings, champion)
    built = str(build_bento(settings.root).tag) if bento else ""
    return Packaged(str(model.tag), built, champion.name, champion.version, champion.run_id)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-only",
        action="store_true",
        help="import the champion into BentoML's store and print its tag; no Bento, no report",
    )
    args = parser.parse_args(argv)
    settings = load_settings_or_exit()
    packaged = package(settings, bento=not args.model_only)
    if args.model_only:
        print(packaged.model_tag)
        return
    write_json(
        {"champion": champion_uri(settings), **asdict(packaged)}, settings.path(PACKAGE_REPORT)
    )
    print(f"packaged {packaged.registered_model} v{packaged.version} as {packaged.bento_tag}")


if __name__ == "__main__":
    main()
