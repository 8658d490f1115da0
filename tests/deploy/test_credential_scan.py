"""No literal credential in the deploy files, the CI files, the devcontainer or the
README's code blocks: a password, secret, token or key is a placeholder (``...``, ``…``,
``${VAR}``, ``$(VAR)``, ``$VAR``, ``change-me``, ``<...>``) or empty. The scan has its
failure cases: a planted literal of each kind in a temporary copy is found."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.deploy.tools import ROOT

pytestmark = pytest.mark.deploy

SCANNED = ["deploy", ".devcontainer", ".github", ".gitlab-ci.yml", "Jenkinsfile"]
SKIPPED = ("deploy/crds/",)  # vendored CRD schemas, not ours
UNTRACKED = {".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
VALUE = r"""(\$\{[^}\n]*\}\}?|\$\(\w+\)|"[^"\n]*"|'[^'\n]*'|[^\s,;)\]}]*)"""
PATTERNS = [
    # PASSWORD=x, password: x, "token": "x", MLFLOW_FLASK_SERVER_SECRET_KEY: x
    re.compile(
        r"(?<![\w-])[\w-]*(?:password|passwd|secret|token|secret_key|access_key|api_key)"
        r"""["']?[ \t]*[=:][ \t]*""" + VALUE,
        re.IGNORECASE,
    ),
    # a user name is no secret; a URI's password is the next pattern's
    re.compile(r"--from-literal=(?!(?:user|username|uri|url)=)[\w.-]+=" + VALUE),
    re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:([^@\s/'\"]+)@", re.IGNORECASE),
    re.compile(r"\b(AKIA[0-9A-Z]{16})\b"),
]
PLACEHOLDER = re.compile(
    r"(|\.\.\.|…|change-me|<[^>]*>|\$\{\{?[^}]*\}\}?|\$\(\w+\)|\$\$?\{?\w+\}?)"
)


def scanned_files(root: Path) -> list[Path]:
    found: list[Path] = []
    for name in SCANNED:
        path = root / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        found += [
            p
            for p in files
            if p.exists()
            and not p.relative_to(root).as_posix().startswith(SKIPPED)
            and not p.name.endswith(".lock")
            and not UNTRACKED & set(p.relative_to(root).parts)
        ]
    return found


def code_blocks(markdown: str) -> str:
    return "\n".join(re.findall(r"^```[^\n]*\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL))


def literals(text: str) -> list[str]:
    """Each credential-looking value in text that is not a placeholder."""
    found = []
    for pattern in PATTERNS:
        for match in pattern.finditer(text):
            value = match.group(1).strip("\"'")
            if not PLACEHOLDER.fullmatch(value):
                found.append(match.group(0))
    return found


def scan(root: Path) -> dict[str, list[str]]:
    texts = {str(p.relative_to(root)): p.read_text(errors="replace") for p in scanned_files(root)}
    readme = root / "README.md"
    if readme.exists():
        texts["README.md (code blocks)"] = code_blocks(readme.read_text())
    return {name: hits for name, text in texts.items() if (hits := literals(text))}


def test_the_scan_reads_the_files_it_should() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in scanned_files(ROOT)}
    assert {
        "deploy/compose/compose.yaml",
        "deploy/compose/.env.example",
        "deploy/kubernetes/base/kustomization.yaml",
        ".devcontainer/devcontainer.json",
        ".github/workflows/ci.yml",
        ".gitlab-ci.yml",
        "Jenkinsfile",
    } <= names
    assert not any(n.startswith("deploy/crds/") for n in names)
    assert "kubectl" in code_blocks((ROOT / "README.md").read_text())


def test_no_literal_credential_in_the_deploy_ci_and_readme_files() -> None:
    assert scan(ROOT) == {}


@pytest.mark.parametrize(
    "line",
    [
        "MLFLOW_AUTH_ADMIN_PASSWORD=hunter2-for-real",
        "      POSTGRES_PASSWORD: s3cr3t",
        '  "token": "abc123"',
        "kubectl create secret generic mlflow-admin --from-literal=password=hunter2",
        "uri: postgresql+psycopg://mlflow:hunter2@postgres:5432/mlflow",
        "AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP",
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ],
)
def test_the_scan_catches_a_planted_literal(line: str, tmp_path: Path) -> None:
    for name in ["deploy/compose", ".github"]:
        shutil.copytree(ROOT / name, tmp_path / name)
    assert scan(tmp_path) == {}
    env = tmp_path / "deploy" / "compose" / ".env.example"
    env.write_text(env.read_text() + line + "\n")
    found = scan(tmp_path)
    assert list(found) == ["deploy/compose/.env.example"], found


def test_the_scan_reads_the_readme_code_blocks_only(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(
        "Set password: hunter2 in prose is not scanned.\n\n"
        "```bash\nexport MLFLOW_TRACKING_PASSWORD=hunter2\n```\n"
    )
    assert scan(tmp_path) == {"README.md (code blocks)": ["MLFLOW_TRACKING_PASSWORD=hunter2"]}


def test_placeholders_pass() -> None:
    text = "\n".join(
        [
            "POSTGRES_PASSWORD=change-me",
            "MLSTACK_FEEDBACK_TOKEN=",
            "MLFLOW_TRACKING_PASSWORD=...",
            "password: ${MLSTACK_DRIFT_PASSWORD:?set MLSTACK_DRIFT_PASSWORD in .env}",
            "token: ${{ secrets.GITHUB_TOKEN }}",
            "--from-literal=password=<password>",
            "postgresql+psycopg://mlflow:${POSTGRES_PASSWORD}@postgres:5432/mlflow",
            "password: $(MLSTACK_PASSWORD)",
        ]
    )
    assert literals(text) == []
