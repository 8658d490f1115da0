"""MLflow authentication and the NetworkPolicies, on the rendered manifests: the server
runs MLflow's basic-auth app, each client runs as its own MLflow user, and only the
pods named here reach MLflow, the service's port and PostgreSQL."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import COMPOSE, DEPLOY, by_kind, render, validate

pytestmark = pytest.mark.deploy

BASE = DEPLOY / "kubernetes" / "base"
KSERVE = DEPLOY / "kubernetes" / "overlays" / "kserve"
PRODUCTION = DEPLOY / "kubernetes" / "overlays" / "production"
CLIENTS = {"mlstack-pipeline", "mlstack-service", "mlstack-drift", "mlflow-users"}
KSERVE_POD = {"serving.kserve.io/inferenceservice": "mlstack-service"}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}


def secret_of(container: dict[str, Any], name: str) -> str:
    ref = env_of(container)[name]["valueFrom"]["secretKeyRef"]
    return f"{ref['name']}/{ref['key']}"


def identity(container: dict[str, Any]) -> str:
    """The Secret a container's MLflow user comes from (its username and password)."""
    user = secret_of(container, "MLFLOW_TRACKING_USERNAME")
    password = secret_of(container, "MLFLOW_TRACKING_PASSWORD")
    assert (user.split("/")[1], password.split("/")[1]) == ("username", "password")
    assert user.split("/")[0] == password.split("/")[0]
    return user.split("/")[0]


def policy(documents: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return by_kind(documents, "NetworkPolicy", name)["spec"]


def admits(spec: dict[str, Any], labels: dict[str, str], port: int) -> bool:
    """Whether a pod with labels, in the policy's namespace, may reach port."""
    for rule in spec["ingress"]:
        if port not in [p["port"] for p in rule["ports"]]:
            continue
        for peer in rule["from"]:
            if peer.get("namespaceSelector") not in (None, {}):
                continue
            selector = peer["podSelector"]
            wanted = selector.get("matchLabels", {})
            expressions = selector.get("matchExpressions", [])
            if all(labels.get(k) == v for k, v in wanted.items()) and all(
                e["operator"] == "In" and labels.get(e["key"]) in e["values"] for e in expressions
            ):
                return True
    return False


def test_the_tracking_server_runs_basic_auth_on_its_database() -> None:
    mlflow = by_kind(render(PRODUCTION), "Deployment", "mlflow")
    container = mlflow["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["server", "--app-name=basic-auth"]
    script = container["command"][2]
    for line in [
        "default_permission = READ",
        "database_uri = $MLFLOW_BACKEND_STORE_URI",
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
    ]:
        assert line in script
    assert '> "$MLFLOW_AUTH_CONFIG_PATH"' in script
    assert "--backend-store-uri=$(MLFLOW_BACKEND_STORE_URI)" in container["args"]
    assert env_of(container)["MLFLOW_AUTH_CONFIG_PATH"]["value"].endswith(".ini")
    assert secret_of(container, "MLFLOW_BACKEND_STORE_URI") == "mlflow-db/uri"
    assert secret_of(container, "MLFLOW_AUTH_ADMIN_USERNAME") == "mlflow-admin/username"
    assert secret_of(container, "MLFLOW_AUTH_ADMIN_PASSWORD") == "mlflow-admin/password"
    assert secret_of(container, "MLFLOW_FLASK_SERVER_SECRET_KEY").startswith("mlflow-admin/")


def test_every_kubernetes_consumer_has_its_own_identity() -> None:
    documents = render(PRODUCTION)
    service = by_kind(documents, "Deployment", "mlstack-service")["spec"]["template"]
    assert identity(service["spec"]["containers"][0]) == "mlflow-service"
    drift = by_kind(documents, "CronJob", "mlstack-drift")["spec"]["jobTemplate"]["spec"]
    assert identity(drift["template"]["spec"]["containers"][0]) == "mlflow-drift"
    isvc = by_kind(render(KSERVE), "InferenceService", "mlstack-service")
    assert identity(isvc["spec"]["predictor"]["containers"][0]) == "mlflow-service"


def test_every_argo_step_has_its_own_identity_and_label() -> None:
    documents = render(DEPLOY / "argo")
    training = by_kind(documents, "WorkflowTemplate", "mlstack-training")["spec"]["templates"]
    cron = by_kind(documents, "CronWorkflow", "mlstack-drift")["spec"]["workflowSpec"]
    steps = {t["name"]: t for t in cron["templates"] if "container" in t}
    stages = [t for t in training if "container" in t]
    assert stages and set(steps) == {"drift-run", "retrain"}
    expected = [(t, "mlflow-pipeline", "mlstack-pipeline") for t in stages] + [
        (steps["drift-run"], "mlflow-drift", "mlstack-drift"),
        (steps["retrain"], "mlflow-pipeline", "mlstack-pipeline"),
    ]
    for template, secret, label in expected:
        assert identity(template["container"]) == secret, template["name"]
        assert template["metadata"]["labels"]["app.kubernetes.io/name"] == label
        assert label in CLIENTS


def test_the_users_job_creates_the_users_as_the_admin() -> None:
    job = by_kind(render(PRODUCTION), "Job", "mlflow-users")["spec"]["template"]
    container = job["spec"]["containers"][0]
    assert container["command"] == ["mlstack", "auth", "create-users"]
    assert container["image"].startswith("ghcr.io/your-org/mlstack:")
    assert secret_of(container, "MLFLOW_TRACKING_USERNAME") == "mlflow-admin/username"
    assert secret_of(container, "MLFLOW_TRACKING_PASSWORD") == "mlflow-admin/password"
    for who in ("pipeline", "service", "drift"):
        assert secret_of(container, f"MLSTACK_{who.upper()}_PASSWORD") == f"mlflow-{who}/password"
    [endpoints] = container["envFrom"]  # MLFLOW_TRACKING_URI
    assert endpoints["configMapRef"]["name"].startswith("mlstack-endpoints")
    assert job["metadata"]["labels"]["app.kubernetes.io/name"] == "mlflow-users"


def pod_labels(documents: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """The pod labels of each workload of a rendering, by the workload's name."""
    found = {}
    for d in documents:
        spec = d.get("spec", {})
        template = spec.get("jobTemplate", {}).get("spec", spec).get("template")
        if d["kind"] in {"Deployment", "CronJob", "Job"}:
            found[d["metadata"]["name"]] = template["metadata"]["labels"]
    return found


def test_only_the_clients_reach_mlflow() -> None:
    documents = render(PRODUCTION)
    spec = policy(documents, "mlflow-ingress")
    assert spec["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "mlflow"}
    assert spec["policyTypes"] == ["Ingress"]
    labels = pod_labels(documents)
    assert labels["mlflow"]["app.kubernetes.io/name"] == "mlflow"
    for name in ("mlstack-service", "mlstack-drift", "mlflow-users"):
        assert admits(spec, labels[name], 5000), name
    assert admits(spec, {"app.kubernetes.io/name": "mlstack-pipeline"}, 5000)
    assert not admits(spec, {"app.kubernetes.io/name": "grafana"}, 5000)
    assert not admits(spec, {}, 5000)
    assert not admits(spec, labels["mlstack-service"], 5432)
    assert all(
        peer.get("namespaceSelector") is None for rule in spec["ingress"] for peer in rule["from"]
    )


def test_only_prometheus_and_api_clients_reach_the_service_port() -> None:
    documents = render(PRODUCTION)
    spec = policy(documents, "mlstack-service-ingress")
    labels = pod_labels(documents)["mlstack-service"]
    assert spec["podSelector"]["matchLabels"].items() <= labels.items()
    [rule] = spec["ingress"]
    assert [p["port"] for p in rule["ports"]] == [3000]
    prometheus, clients = rule["from"]
    assert prometheus == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    assert clients["podSelector"] == {"matchLabels": {"mlstack.io/api-client": "true"}}
    assert not admits(spec, {"app.kubernetes.io/name": "mlstack-drift"}, 3000)
    comment = (BASE / "network-policies.yaml").read_text()
    assert "share port 3000" in comment and "cannot" in comment


def test_only_mlflow_reaches_postgres() -> None:
    spec = policy(render(PRODUCTION), "postgres-ingress")
    assert spec["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "postgres"}
    assert admits(spec, {"app.kubernetes.io/name": "mlflow"}, 5432)
    for name in CLIENTS:
        assert not admits(spec, {"app.kubernetes.io/name": name}, 5432)


def test_the_kserve_overlay_covers_the_predictor_pods() -> None:
    documents = render(KSERVE)
    assert admits(policy(documents, "mlflow-ingress"), KSERVE_POD, 5000)
    service = policy(documents, "mlstack-service-ingress")
    assert service["podSelector"] == {"matchLabels": KSERVE_POD}
    assert [d for d in documents if d["kind"] == "Deployment"] == [
        by_kind(documents, "Deployment", "mlflow")
    ]


def test_a_misspelled_network_policy_field_fails_strict_validation(tmp_path: Path) -> None:
    documents = copy.deepcopy(render(BASE))
    spec = policy(documents, "mlflow-ingress")
    spec["ingress"][0]["form"] = spec["ingress"][0].pop("from")
    assert validate(documents, tmp_path).returncode != 0


def test_compose_keeps_postgres_to_mlflow_and_gives_identities() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert services["postgres"]["networks"] == ["db"]
    sharing = {n for n, s in services.items() if "db" in s.get("networks", [])}
    assert sharing == {"postgres", "mlflow"}
    assert "--app-name=basic-auth" in services["mlflow"]["entrypoint"][2]
    assert services["service"]["environment"]["MLFLOW_TRACKING_USERNAME"] == "mlstack-service"
    assert services["drift"]["environment"]["MLFLOW_TRACKING_USERNAME"] == "mlstack-drift"
    assert services["service"]["environment"]["MLSTACK_FEEDBACK_TOKEN"].startswith(
        "${MLSTACK_FEEDBACK_TOKEN"
    )
    users = services["mlflow-users"]
    assert users["command"] == ["mlstack", "auth", "create-users"]
    assert users["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert services["drift"]["depends_on"]["mlflow-users"] == {
        "condition": "service_completed_successfully"
    }
