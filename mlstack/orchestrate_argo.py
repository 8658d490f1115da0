"""The Argo Workflows rendering of ``mlstack orchestrate``, built with Hera.

Training is a ``WorkflowTemplate`` whose DAG has a task per stage; pods share nothing but
the DVC remote, so each step pulls what its stage reads, runs it, and pushes what it made.
The drift job is a ``CronWorkflow`` (``concurrencyPolicy: Forbid``) whose second step runs
``mlstack retrain`` (in the same image, on the DVC remote's data) when the drift run flagged
drift.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from hera.workflows import (
    DAG,
    Container,
    CronWorkflow,
    Parameter,
    Step,
    Steps,
    Task,
    WorkflowTemplate,
)
from hera.workflows import models as m

if TYPE_CHECKING:
    from mlstack.stage_graph import Stage
    from pipeline.settings import Settings

TRAINING = "mlstack-training"
ENV_FROM = [m.EnvFromSource(config_map_ref=m.ConfigMapEnvSource(name="mlstack-endpoints"))]
S3_ENV = [
    m.EnvVar(
        name=key,
        value_from=m.EnvVarSource(secret_key_ref=m.SecretKeySelector(name="mlstack-s3", key=key)),
    )
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
]


def _mlflow_env(secret: str) -> list[m.EnvVar]:
    """The step's own MLflow user: Secret ``secret``'s username and password."""
    return [
        m.EnvVar(
            name=f"MLFLOW_TRACKING_{key.upper()}",
            value_from=m.EnvVarSource(secret_key_ref=m.SecretKeySelector(name=secret, key=key)),
        )
        for key in ("username", "password")
    ]


# Training and retrain as mlstack-pipeline, the drift run as mlstack-drift; the pod labels
# are what the base's NetworkPolicy mlflow-ingress admits.
PIPELINE_ENV = S3_ENV + _mlflow_env("mlflow-pipeline")
DRIFT_ENV = S3_ENV + _mlflow_env("mlflow-drift")
PIPELINE_LABELS = {"app.kubernetes.io/name": "mlstack-pipeline"}
DRIFT_LABELS = {"app.kubernetes.io/name": "mlstack-drift"}


def _dump(document: WorkflowTemplate | CronWorkflow, header: str) -> str:
    return f"# {header}\n" + document.to_yaml()


def _step(name: str, image: str, script: str) -> Container:
    return Container(
        name=name,
        image=image,
        command=["sh", "-ec", script],
        env=PIPELINE_ENV,
        env_from=ENV_FROM,
        labels=PIPELINE_LABELS,
    )


def _pull(upstream: tuple[str, ...]) -> str:
    """The outputs of the stages a stage reads from, off the DVC remote (raw data is in git)."""
    return f"dvc pull --remote s3 {' '.join(upstream)}\n" if upstream else ""


def training(stages: list[Stage], image: str, header: str) -> str:
    """The WorkflowTemplate: a DAG task per stage, after the stages it reads from."""
    with WorkflowTemplate(
        name=TRAINING, entrypoint="training", labels={"app.kubernetes.io/part-of": "mlstack"}
    ) as template:
        containers = {
            s.name: _step(
                f"stage-{s.name}",
                image,
                _pull(s.upstream) + f"{s.command}\ndvc push --remote s3 {s.name}",
            )
            for s in stages
        }
        with DAG(name="training"):
            tasks = {name: cast(Task, c(name=name)) for name, c in containers.items()}
            for s in stages:
                for before in s.upstream:
                    tasks[before] >> tasks[s.name]
    return _dump(template, header.format(tool="argo"))


def drift(settings: Settings, image: str, header: str, verdict: str) -> str:
    """The CronWorkflow: the drift run, then training's retrain when it flagged drift."""
    with CronWorkflow(
        name="mlstack-drift",
        entrypoint="monitoring",
        schedule=settings.drift.schedule,
        timezone="Etc/UTC",
        concurrency_policy="Forbid",
        starting_deadline_seconds=600,
        labels={"app.kubernetes.io/part-of": "mlstack"},
    ) as cron:
        run = Container(
            name="drift-run",
            image=image,
            command=["sh", "-ec", f"dvc pull --remote s3 data/reference\n{verdict} > /tmp/flag"],
            env=DRIFT_ENV,
            env_from=ENV_FROM,
            labels=DRIFT_LABELS,
            outputs=[Parameter(name="drift", value_from=m.ValueFrom(path="/tmp/flag"))],
        )
        retrain = _step(
            "retrain",
            image,
            "dvc pull --remote s3 --allow-missing\nmlstack retrain --json\ndvc push --remote s3",
        )
        with Steps(name="monitoring"):
            judged = cast(Step, run(name="drift"))
            retrain(name="retrain", when=f"{judged.get_parameter('drift')} == true")
    return _dump(cron, header.format(tool="argo"))
