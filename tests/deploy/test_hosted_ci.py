"""The hosted CI files: GitLab and GitHub against their published JSON schemas (vendored
by check-jsonschema), the Jenkinsfile's declarative structure; each calls .ci/run.

No Groovy or declarative-pipeline parser installs here: the Jenkinsfile is checked by its
structure (mlstack.deploy.structure), as ``mlstack deploy check`` does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlstack.deploy.structure import declarative_problems
from tests.deploy.tools import ROOT, WORKFLOW, tool

pytestmark = pytest.mark.deploy

GITLAB = ROOT / ".gitlab-ci.yml"
JENKINSFILE = ROOT / "Jenkinsfile"


def schema_check(schema: str, path: Path) -> tuple[int, str]:
    done = tool("check-jsonschema", "--builtin-schema", schema, str(path))
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("schema", "path"),
    [("vendor.gitlab-ci", GITLAB), ("vendor.github-workflows", WORKFLOW)],
    ids=["gitlab", "github"],
)
def test_ci_file_passes_its_published_schema(schema: str, path: Path) -> None:
    code, output = schema_check(schema, path)
    assert code == 0, output


@pytest.mark.parametrize(
    ("schema", "path", "good", "bad"),
    [
        ("vendor.gitlab-ci", GITLAB, "  script:\n    - make lint", "  scripts:\n    - make lint"),
        ("vendor.gitlab-ci", GITLAB, "timeout: 30 minutes", "timeout: [30]"),
        ("vendor.github-workflows", WORKFLOW, "runs-on:", "runs_on:"),
        ("vendor.github-workflows", WORKFLOW, "timeout-minutes: 90", "timeout-minutes: soon"),
    ],
    ids=["gitlab-field", "gitlab-type", "github-field", "github-type"],
)
def test_schema_check_rejects_a_broken_ci_file(
    schema: str, path: Path, good: str, bad: str, tmp_path: Path
) -> None:
    text = path.read_text()
    assert good in text
    broken = tmp_path / path.name
    broken.write_text(text.replace(good, bad, 1))
    code, _ = schema_check(schema, broken)
    assert code != 0


def test_every_hosted_ci_runs_ci_run_and_the_demo() -> None:
    gitlab = yaml.safe_load(GITLAB.read_text())
    scripts = [
        line for job in gitlab.values() if isinstance(job, dict) for line in job.get("script", [])
    ]
    assert ".ci/run" in scripts and "make demo" in scripts
    assert ".cache/uv" in gitlab["cache"]["paths"] and gitlab["variables"]["UV_CACHE_DIR"]
    jenkins = JENKINSFILE.read_text()
    assert "sh '.ci/run'" in jenkins and "sh 'make demo'" in jenkins and "UV_CACHE_DIR" in jenkins
    github = WORKFLOW.read_text()
    assert "~/.cache/uv" in github and "make demo" in github


def test_jenkinsfile_is_a_declarative_pipeline() -> None:
    assert declarative_problems(JENKINSFILE.read_text()) == []


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ("    stages {", "    stagez {"),
        (
            "            steps {\n                sh 'make demo'\n            }",
            "            sh 'make demo'",
        ),
        ("        }\n    }\n}", "        }\n    }\n"),
        ("pipeline {", "pipline {"),
    ],
    ids=["section", "steps", "brace", "pipeline"],
)
def test_jenkinsfile_check_rejects_a_broken_copy(good: str, bad: str) -> None:
    text = JENKINSFILE.read_text()
    assert good in text
    assert declarative_problems(text.replace(good, bad, 1)) != []
