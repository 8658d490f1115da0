"""``mlstack model``: the champion's recorded history, and rolling it back in one command.

``history`` lists every move of the champion alias, newest first. ``rollback`` moves the
alias back to the version the champion replaced (or to ``--to VERSION``), records the
move, and imports the new champion into BentoML's model store, so ``<name>:latest``, the
model the service declares, is the rolled-back one at the next start. A running
``bentoml serve`` does not wait for that: it follows the alias itself, within
``serving.reload_seconds`` (serving/champion.py), the same way it follows a promotion.

Exit status: 0 when done; 2 when the request was refused and nothing changed (no such
model or version, no previous champion, already champion, no MLflow store); 1 when the
alias moved but packaging failed. ``reports/promotion.json`` is left alone: it is the
promote stage's DVC output, and rewriting it would make ``dvc repro`` run promote again.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from mlstack.output import console, print_table
from pipeline.settings import load_settings_or_exit

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pipeline.registry import History
    from pipeline.settings import Settings

EXIT_REFUSED = 2

model_app = typer.Typer(
    help="The registered model: who is champion, since when and why, and rolling back.",
    no_args_is_help=True,
)


def _client(settings: Settings) -> MlflowClient:
    """A client on the project's store (``MLFLOW_TRACKING_URI`` if set), never creating one."""
    from pipeline.tracking import StoreNotFound, client

    try:
        return client(settings)
    except StoreNotFound as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(EXIT_REFUSED) from None


def _refuse(error: Exception) -> typer.Exit:
    typer.echo(f"refused, nothing changed: {error}", err=True)
    return typer.Exit(EXIT_REFUSED)


def _table(found: History) -> None:
    from rich import box
    from rich.table import Table

    table = Table(
        title=f"{found.name} @{found.alias}, newest first",
        caption=f"* the {found.alias} now",
        box=box.SIMPLE,
    )
    for column in ("", "version", "since (UTC)", "previous", "score"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason")
    for change in found.changes:
        score = f"{change.metric} {change.score:.4f}" if change.score is not None else ""
        table.add_row(
            "*" if change.current else "",
            change.version,
            change.since[:16].replace("T", " "),
            change.previous or "",
            score,
            change.reason,
        )
    print_table(console(), table)


@model_app.command("history")
def history(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Every recorded move of the champion alias, newest first, with promotion scores."""
    from pipeline.registry import RegistryError
    from pipeline.registry import history as champion_history

    settings = load_settings_or_exit()
    registry = _client(settings)
    try:
        found = champion_history(registry, settings.model.name, settings.promote.alias)
    except RegistryError as error:
        raise _refuse(error) from None
    if as_json:
        typer.echo(json.dumps(asdict(found), indent=2))
        return
    if found.changes:
        _table(found)
    else:
        typer.echo(f"no recorded changes of {found.name} @{found.alias}")
    recorded = found.changes[0].version if found.changes else None
    if found.champion is None:
        typer.echo(f"{found.name} has no {found.alias} now")
    elif found.champion != recorded:
        typer.echo(
            f"the {found.alias} is v{found.champion}, by a move not recorded here (made by "
            "hand, or before mlstack kept a history)"
        )


@model_app.command("rollback")
def rollback(
    to: Annotated[
        str | None,
        typer.Option(help="Version to make champion (default: the one the champion replaced)."),
    ] = None,
    package: Annotated[
        bool,
        typer.Option(help="Import the new champion into the BentoML store for `bentoml serve`."),
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the change as one JSON object, nothing else.")
    ] = False,
) -> None:
    """Move the champion alias back to the previous champion (or --to VERSION) and package it.

    The move is recorded in the registry like a promotion. A running `bentoml serve` follows
    the alias within serving.reload_seconds, without a restart.
    """
    from pipeline.registry import RegistryError
    from pipeline.registry import rollback as roll_back

    settings = load_settings_or_exit()
    name, alias = settings.model.name, settings.promote.alias
    registry = _client(settings)
    version = to.strip().removeprefix("v") if to is not None else None
    try:
        change = roll_back(registry, name, alias, version)
    except RegistryError as error:
        raise _refuse(error) from None
    before = f"v{change.previous}" if change.previous else f"no {alias}"

    def say(message: str) -> None:
        if not as_json:
            typer.echo(message)

    say(f"{name} @{alias}: {before} -> v{change.version} ({change.reason})")
    if not package:
        if as_json:
            typer.echo(json.dumps({"change": asdict(change), "packaged": None}))
            return
        say(
            "not packaged: the BentoML store still holds the model packaged before; "
            "package the new champion with `python -m pipeline.package`"
        )
        return
    tag = _package_or_exit(settings, registry, name, change.version)
    if as_json:
        typer.echo(json.dumps({"change": asdict(change), "packaged": tag}))
        return
    say(f"packaged v{change.version} as {tag} in the BentoML store")
    say(
        "a running `bentoml serve` switches to it within serving.reload_seconds; a Bento "
        "built before still packs the old model: `bentoml build` makes a new one"
    )


def _package_or_exit(settings: Settings, registry: MlflowClient, name: str, version: str) -> str:
    """``_package``, or exit 1 saying the alias moved all the same."""
    try:
        return _package(settings, registry, name, version)
    except Exception as error:
        typer.echo(
            f"packaging v{version} failed: {error}\nthe {settings.promote.alias} moved all "
            "the same; package it with `python -m pipeline.package`",
            err=True,
        )
        raise typer.Exit(1) from error


def _package(settings: Settings, registry: MlflowClient, name: str, version: str) -> str:
    """Import the version into the BentoML store as the newest ``<name>:latest``."""
    from pipeline.bento import import_champion
    from pipeline.tracking import Champion

    found = registry.get_model_version(name, version)
    with console(stderr=True).status(f"importing v{version} into the BentoML store"):
        model = import_champion(settings, Champion(name, version, str(found.run_id or "")))
    return str(model.tag)
