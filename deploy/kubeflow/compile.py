"""Compile mlstack's training pipeline for Kubeflow Pipelines from graph.json (written by
`mlstack orchestrate kfp` from dvc.yaml) into pipeline.yaml, in this folder's own env:

    uv run --project deploy/kubeflow python deploy/kubeflow/compile.py

One container component per DVC stage, in the project's image, after the stages it reads
from; each pulls their outputs off the DVC remote, runs its stage, and pushes its own.
"""

# No `from __future__ import annotations`: kfp reads the component's annotations as types.

import json
import sys
from pathlib import Path

from kfp import compiler, dsl

HERE = Path(__file__).resolve().parent


def stage_component(name: str, upstream: list[str], image: str):  # noqa: ANN201 - kfp's
    pull = f"dvc pull --remote s3 {' '.join(upstream)}\n" if upstream else ""
    script = f"{pull}dvc repro --single-item {name}\ndvc push --remote s3 {name}"

    def stage() -> dsl.ContainerSpec:
        return dsl.ContainerSpec(image=image, command=["sh", "-ec", script])

    stage.__name__ = f"stage_{name}"
    return dsl.container_component(stage)


def build(graph: dict) -> object:
    components = {}
    for stage in graph["stages"]:
        components[stage["name"]] = stage_component(
            stage["name"], stage["upstream"], graph["image"]
        )

    @dsl.pipeline(name="mlstack-training", description=graph["generated"])
    def training() -> None:
        tasks = {}
        for stage in graph["stages"]:
            task = components[stage["name"]]()
            task.set_caching_options(False)  # DVC decides what is up to date
            task.set_display_name(stage["name"])
            for before in stage["upstream"]:
                task.after(tasks[before])
            tasks[stage["name"]] = task

    return training


def main(graph_file: Path, output: Path) -> None:
    compiler.Compiler().compile(build(json.loads(graph_file.read_text())), str(output))


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        Path(args[0]) if args else HERE / "graph.json",
        Path(args[1]) if len(args) > 1 else HERE / "pipeline.yaml",
    )
