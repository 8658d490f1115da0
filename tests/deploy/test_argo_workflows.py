"""The Argo Workflows files (deploy/argo, from `mlstack orchestrate argo`) against the
vendored Argo Workflows v3.7.9 CRDs, with their failure cases: a misspelled field, a
wrong type, a kind with no CRD."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mlstack.deploy import crds
from tests.deploy.tools import DEPLOY, KUSTOMIZATIONS, by_kind, render

pytestmark = pytest.mark.deploy

ARGO = DEPLOY / "argo"


def documents() -> list[dict[str, Any]]:
    return copy.deepcopy(render(ARGO))


def problems_of(document: dict[str, Any], *words: str) -> None:
    found = crds.problems(document)
    assert found, "the broken document passed"
    assert any(all(w in p for w in words) for p in found), found


def test_argo_kinds_are_vendored_and_the_folder_is_a_kustomization() -> None:
    assert {
        ("argoproj.io", "v1alpha1", "WorkflowTemplate"),
        ("argoproj.io", "v1alpha1", "CronWorkflow"),
    } <= set(crds.schemas())
    assert ARGO in KUSTOMIZATIONS


def test_the_argo_files_match_their_crds() -> None:
    rendered = documents()
    assert {d["kind"] for d in rendered} == {"WorkflowTemplate", "CronWorkflow"}
    assert [p for d in rendered for p in crds.problems(d)] == []


def test_a_misspelled_cron_workflow_field_fails() -> None:
    cron = by_kind(documents(), "CronWorkflow", "mlstack-drift")
    cron["spec"]["concurrencyPolicyy"] = cron["spec"].pop("concurrencyPolicy")
    problems_of(cron, "spec", "concurrencyPolicyy")


def test_a_misspelled_dag_task_field_fails() -> None:
    template = by_kind(documents(), "WorkflowTemplate", "mlstack-training")
    dag = next(t for t in template["spec"]["templates"] if "dag" in t)["dag"]
    dag["tasks"][1]["dependss"] = dag["tasks"][1].pop("depends")
    problems_of(template, "dag.tasks", "dependss")


def test_a_wrong_type_fails() -> None:
    cron = by_kind(documents(), "CronWorkflow", "mlstack-drift")
    cron["spec"]["startingDeadlineSeconds"] = "ten minutes"
    problems_of(cron, "spec.startingDeadlineSeconds", "integer")
    template = by_kind(documents(), "WorkflowTemplate", "mlstack-training")
    template["spec"]["templates"][0]["container"]["command"] = "dvc repro"
    problems_of(template, "command", "array")


def test_an_unknown_argo_kind_fails() -> None:
    cron = by_kind(documents(), "CronWorkflow", "mlstack-drift")
    cron["kind"] = "CronWorkflows"
    problems_of(cron, "CronWorkflows", "no vendored CRD")
