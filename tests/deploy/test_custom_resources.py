"""Every rendered custom resource against its vendored CRD (tests/deploy/crds.py).

kubernetes-validate --strict lets a kind it does not know through with a warning; these
tests close that gap for the KServe overlay and the Argo CD Applications, and each
check has its failure case: a misspelled field, a wrong type, a kind with no CRD.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from mlstack.deploy import crds
from tests.deploy.tools import DEPLOY, KUSTOMIZATIONS, ROOT, by_kind, render

pytestmark = pytest.mark.deploy

KSERVE = DEPLOY / "kubernetes" / "overlays" / "kserve"
ARGOCD = DEPLOY / "argocd"


def test_every_vendored_crd_is_indexed() -> None:
    assert {
        ("serving.kserve.io", "v1beta1", "InferenceService"),
        ("argoproj.io", "v1alpha1", "Application"),
    } <= set(crds.schemas())
    readme = (crds.CRDS / "README.md").read_text()
    for folder in crds.CRDS.iterdir():
        if folder.is_dir():
            assert f"`{folder.name}`" in readme, f"{folder.name} has no source row in README"


@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_custom_resource_matches_its_crd(folder: Path) -> None:
    found = [p for doc in render(folder) for p in crds.problems(doc)]
    assert found == []


def test_the_new_kustomizations_hold_custom_resources() -> None:
    """So the test above checks something: each renders a kind only a CRD knows."""
    assert {KSERVE, ARGOCD} <= set(KUSTOMIZATIONS)
    assert by_kind(render(KSERVE), "InferenceService", "mlstack-service")
    assert len([d for d in render(ARGOCD) if d["kind"] == "Application"]) == 2


def inference_service() -> dict[str, Any]:
    return copy.deepcopy(by_kind(render(KSERVE), "InferenceService", "mlstack-service"))


def application() -> dict[str, Any]:
    return copy.deepcopy(by_kind(render(ARGOCD), "Application", "mlstack-kserve"))


def one_problem(document: dict[str, Any], *words: str) -> None:
    found = crds.problems(document)
    assert found, "the broken document passed"
    assert any(all(w in p for w in words) for p in found), found


def test_a_misspelled_inference_service_field_fails() -> None:
    isvc = inference_service()
    isvc["spec"]["predictor"]["maxReplica"] = isvc["spec"]["predictor"].pop("maxReplicas")
    one_problem(isvc, "spec.predictor", "maxReplica")


def test_a_misspelled_field_deep_in_the_predictor_container_fails() -> None:
    isvc = inference_service()
    isvc["spec"]["predictor"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    one_problem(isvc, "readinessProbe", "httpGett")


def test_a_wrong_type_in_an_inference_service_fails() -> None:
    isvc = inference_service()
    isvc["spec"]["predictor"]["minReplicas"] = "two"
    one_problem(isvc, "spec.predictor.minReplicas", "integer")


def test_a_misspelled_application_field_fails() -> None:
    app = application()
    app["spec"]["syncPolicy"]["automated"]["selfHeel"] = True
    one_problem(app, "spec.syncPolicy.automated", "selfHeel")


def test_a_wrong_type_in_an_application_fails() -> None:
    app = application()
    app["spec"]["syncPolicy"]["automated"]["prune"] = "yes"
    one_problem(app, "spec.syncPolicy.automated.prune", "boolean")


def test_a_missing_required_application_field_fails() -> None:
    app = application()
    del app["spec"]["destination"]
    one_problem(app, "destination", "required")


def test_a_kind_with_no_crd_fails() -> None:
    one_problem(
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor", "metadata": {"name": "x"}},
        "Sensor",
        "no vendored CRD",
    )
    one_problem(
        {"apiVersion": "serving.kserve.io/v1alpha9", "kind": "InferenceService"},
        "no vendored CRD",
    )


def test_core_kinds_are_left_to_kubernetes_validate() -> None:
    assert crds.problems({"apiVersion": "apps/v1", "kind": "Deployment"}) == []
    assert crds.problems({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress"}) == []


def test_kserve_overlay_serves_the_bento_instead_of_the_deployment() -> None:
    documents = render(KSERVE)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in documents}
    assert ("Deployment", "mlstack-service") not in kinds
    assert ("HorizontalPodAutoscaler", "mlstack-service") not in kinds
    assert ("CronJob", "mlstack-drift") in kinds
    isvc = by_kind(documents, "InferenceService", "mlstack-service")
    annotations = isvc["metadata"]["annotations"]
    assert annotations["serving.kserve.io/enable-prometheus-scraping"] == "true"
    assert annotations["prometheus.kserve.io/path"] == "/metrics"
    predictor = isvc["spec"]["predictor"]
    assert predictor["minReplicas"] < predictor["maxReplicas"]
    container = predictor["containers"][0]
    port = container["ports"][0]["containerPort"]
    assert port == 3000 == int(annotations["prometheus.kserve.io/port"])
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": port}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["image"] == "ghcr.io/your-org/mlstack-service:0.1.0"
    env = {e["name"]: e for e in container["env"]}
    assert env["MLSTACK_FEEDBACK_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "mlstack-feedback"
    endpoints = container["envFrom"][0]["configMapRef"]["name"]
    config = by_kind(documents, "ConfigMap", endpoints)
    assert config["data"]["MLSTACK_CAPTURE_PATH"].startswith("s3://")


def test_argocd_applications_follow_each_overlay_with_prune_and_self_heal() -> None:
    apps = [d for d in render(ARGOCD) if d["kind"] == "Application"]
    paths = {a["spec"]["source"]["path"] for a in apps}
    assert paths == {"deploy/kubernetes/overlays/production", "deploy/kubernetes/overlays/kserve"}
    for app in apps:
        assert (ROOT / app["spec"]["source"]["path"] / "kustomization.yaml").exists()
        assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        rendered = render(ROOT / app["spec"]["source"]["path"])
        assert any(d["kind"] == "CronJob" for d in rendered), "the drift job deploys with it"
