"""``mlstack orchestrate``: the committed Airflow, Argo and Kubeflow files are what dvc.yaml
and params.yaml render to now, and a stage added to dvc.yaml lands in every rendering after
the stage it reads from."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlstack.orchestrate import (
    AIRFLOW_DAGS,
    ARGO_DRIFT,
    ARGO_TRAINING,
    KFP_GRAPH,
    VERDICT,
    Tool,
    renderings,
)
from mlstack.stage_graph import stage_graph

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ["prepare", "train", "evaluate", "promote", "package"]


@pytest.mark.parametrize("tool", list(Tool))
def test_committed_renderings_are_up_to_date(tool: Tool) -> None:
    for relative, text in renderings(tool, ROOT).items():
        committed = (ROOT / relative).read_text()
        assert committed == text, f"{relative} is stale: run `mlstack orchestrate {tool}`"


def test_the_dags_verdict_is_the_shell_line_mlstack_renders() -> None:
    """The DAG file spells the drift verdict's shell line as a wrapped literal: it must read
    back as exactly that line, quotes and escapes included."""
    tree = ast.parse(renderings(Tool.airflow, ROOT)[AIRFLOW_DAGS])
    (literal,) = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id == "VERDICT"
    ]
    assert ast.literal_eval(literal) == VERDICT


def test_the_graph_is_dvcs_in_dependency_order() -> None:
    stages = stage_graph(ROOT)
    assert [s.name for s in stages] == PIPELINE
    upstream = {s.name: set(s.upstream) for s in stages}
    assert upstream["evaluate"] == {"prepare", "train"}
    assert upstream["package"] == {"promote"}


@pytest.fixture
def project_with_a_report_stage(tmp_path: Path) -> Path:
    """A copy of dvc.yaml and params.yaml with a stage ``report`` reading evaluate's metrics."""
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    subprocess.run(
        [sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True
    )
    pipeline = yaml.safe_load((tmp_path / "dvc.yaml").read_text())
    pipeline["stages"]["report"] = {
        "cmd": "python -m pipeline.report",
        "deps": ["reports/metrics.json"],
        "outs": ["reports/summary.md"],
    }
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    return tmp_path


def test_an_added_stage_shows_up_in_every_rendering(project_with_a_report_stage: Path) -> None:
    root = project_with_a_report_stage
    stages = {s.name: s.upstream for s in stage_graph(root)}
    assert stages["report"] == ("evaluate",)

    airflow = renderings(Tool.airflow, root)[AIRFLOW_DAGS]
    assert '["report", ["evaluate"]]' in airflow
    assert airflow != renderings(Tool.airflow, ROOT)[AIRFLOW_DAGS]

    argo = yaml.safe_load(renderings(Tool.argo, root)[ARGO_TRAINING])
    dag = next(t for t in argo["spec"]["templates"] if t["name"] == "training")["dag"]
    report = next(t for t in dag["tasks"] if t["name"] == "report")
    assert report["template"] == "stage-report"
    assert report["depends"] == "evaluate"
    step = next(t for t in argo["spec"]["templates"] if t["name"] == "stage-report")
    assert "dvc repro --single-item report" in step["container"]["command"][-1]
    assert "dvc pull --remote s3 evaluate" in step["container"]["command"][-1]

    kfp = json.loads(renderings(Tool.kfp, root)[KFP_GRAPH])
    assert {"name": "report", "upstream": ["evaluate"]} in kfp["stages"]


def test_the_drift_cron_workflow_never_overlaps_and_retrains_on_drift() -> None:
    cron = yaml.safe_load((ROOT / ARGO_DRIFT).read_text())
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["schedules"] == ["*/15 * * * *"]
    steps = next(t for t in cron["spec"]["workflowSpec"]["templates"] if "steps" in t)["steps"]
    assert steps[1][0]["when"] == "{{steps.drift.outputs.parameters.drift}} == true"


def test_a_cycle_in_dvc_yaml_is_refused(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True
    )
    (tmp_path / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "a": {"cmd": "true", "deps": ["b.txt"], "outs": ["a.txt"]},
                    "b": {"cmd": "true", "deps": ["a.txt"], "outs": ["b.txt"]},
                }
            }
        )
    )
    with pytest.raises(Exception, match="cycle"):
        stage_graph(tmp_path)
