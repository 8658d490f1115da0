"""``mlstack``: the project's one console script.

Each sub-command lives beside the code it drives and is registered here; heavy imports
(Evidently, MLflow, BentoML) happen inside the commands, so ``mlstack --help`` is quick.
"""

from __future__ import annotations

import typer

from monitoring.drift_command import drift_app
from pipeline.model_command import model_app
from serving.replay import replay

app = typer.Typer(
    name="mlstack",
    help="The mlstack loop: replay traffic to the service, judge drift on what it served, "
    "and roll the champion back.",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(replay)
app.add_typer(drift_app, name="drift")
app.add_typer(model_app, name="model")


if __name__ == "__main__":
    app()
