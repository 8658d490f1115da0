"""``mlstack``: the project's one console script.

Each sub-command lives in its own module of this package and is registered here; heavy
imports (Evidently, MLflow, BentoML) happen inside the commands, so ``mlstack --help``
is quick. The params file is ``$MLSTACK_PARAMS`` or the project's ``params.yaml``; a bad
one ends every command with exit 2 and one line naming the key.
"""

from __future__ import annotations

import typer

from mlstack.auth_command import auth_app
from mlstack.deploy.check import deploy_app
from mlstack.drift_command import drift_app
from mlstack.model_command import model_app
from mlstack.orchestrate import orchestrate
from mlstack.replay import replay
from mlstack.retrain_command import retrain_command

app = typer.Typer(
    name="mlstack",
    help="The mlstack loop: replay traffic to the service, judge drift on what it served, "
    "retrain on its labeled rows behind the gate, and roll the champion back.",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(replay)
app.command("retrain")(retrain_command)
app.command("orchestrate")(orchestrate)
app.add_typer(drift_app, name="drift")
app.add_typer(model_app, name="model")
app.add_typer(deploy_app, name="deploy")
app.add_typer(auth_app, name="auth")


if __name__ == "__main__":
    app()
