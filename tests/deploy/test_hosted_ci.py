"""The hosted CI files: GitLab and GitHub against their published JSON schemas (vendored
by check-jsonschema), the Jenkinsfile's declarative structure; each calls .ci/run.

No Groovy or declarative-pipeline parser was wired in here: the Jenkinsfile is checked
structurally (balanced braces outside strings, the declarative sections in order, every
stage with steps), which a real Jenkins linter would check more strictly.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

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


def declarative_problems(text: str) -> list[str]:
    """What breaks a declarative pipeline's shape: braces, sections, stages without steps."""
    strings = r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\""
    code = re.sub(rf"//[^\n]*|{strings}", lambda m: "" if m[0].startswith("//") else "''", text)
    problems, depth = [], 0
    for char in code:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            problems.append("a '}' closes nothing")
            depth = 0
    if depth:
        problems.append(f"{depth} '{{' never closed")
    if not re.match(r"\s*pipeline\s*\{", code):
        problems.append("does not start with 'pipeline {'")
    sections = [m.group(1) for m in re.finditer(r"^ {4}(\w+)\s*[{(]", code, re.M)]
    for needed in ("agent", "stages"):
        if needed not in sections:
            problems.append(f"no top-level '{needed}' section")
    for _name, body in re.findall(r"stage\((''|\w+)\)\s*\{(.*?)\n {8}\}", code, re.S):
        if "steps" not in body:
            problems.append(f"a stage without steps: {body.strip()[:40]}")
    if len(re.findall(r"\bstage\(", code)) != len(re.findall(r"\bsteps\s*\{", code)):
        problems.append("not one steps block per stage")
    return problems


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
