"""``mlstack auth create-users``: the team stack's three MLflow identities, least privilege.

The tracking server runs MLflow's basic-auth app with ``default_permission = READ``: every
authenticated user may read runs, the registry and artifacts; a resource's creator manages
it; nobody else may change it. So the identities need no grants, only to exist:

- ``mlstack-pipeline`` (``dvc repro``, ``mlstack retrain``, ``mlstack model rollback``)
  creates the training experiment and the registered model, so it alone registers
  versions, moves ``@champion`` and deletes versions;
- ``mlstack-service`` (``bentoml serve``) reads the registry and downloads artifacts;
- ``mlstack-drift`` (``mlstack drift run``) reads the registry and the champion's
  artifacts, and creates (so owns) the ``monitoring`` experiment it logs to.

MLflow's basic auth cannot stop an authenticated user from creating an experiment or a
registered model of its own (only workspaces can); it can stop one from touching another's.

The command runs as the admin (``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``
against ``MLFLOW_TRACKING_URI``), takes each password from its environment variable, and is
idempotent: an existing user gets the password from the environment (which is how a
password is rotated). Exit 2 names a missing variable; nothing is created then.
"""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from pipeline import environment

IDENTITIES = {
    "mlstack-pipeline": environment.PIPELINE_PASSWORD,
    "mlstack-service": environment.SERVICE_PASSWORD,
    "mlstack-drift": environment.DRIFT_PASSWORD,
}
EXIT_REFUSED = 2

auth_app = typer.Typer(
    help="The tracking server's identities (MLflow basic auth).", no_args_is_help=True
)


def missing_settings() -> list[str]:
    needed = [
        environment.MLFLOW_TRACKING_URI,
        environment.MLFLOW_TRACKING_USERNAME,
        environment.MLFLOW_TRACKING_PASSWORD,
        *IDENTITIES.values(),
    ]
    return [name for name in needed if not os.environ.get(name)]


@auth_app.command("create-users")
def create_users(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object: each user and what was done.")
    ] = False,
) -> None:
    """Create (or set the password of) mlstack-pipeline, mlstack-service and mlstack-drift."""
    missing = missing_settings()
    if missing:
        typer.echo(f"auth create-users: set {', '.join(missing)}", err=True)
        raise typer.Exit(EXIT_REFUSED)
    from mlflow.exceptions import RestException
    from mlflow.server import get_app_client

    admin = get_app_client("basic-auth", tracking_uri=os.environ[environment.MLFLOW_TRACKING_URI])
    done = {}
    for username, variable in IDENTITIES.items():
        password = os.environ[variable]
        try:
            admin.get_user(username)
        except RestException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            admin.create_user(username, password)
            done[username] = "created"
        else:
            admin.update_user_password(username, password)
            done[username] = "password set"
    if as_json:
        typer.echo(json.dumps({"users": done}))
    else:
        typer.echo("\n".join(f"{user}: {what}" for user, what in done.items()))
