"""``mlstack deploy check``: is everything under ``deploy/`` (and the CI and dev files)
deployable? One line per file or kustomization, each checked by the real tool where one
installs: ``kubectl kustomize`` renders every kustomization, ``kubernetes-validate --strict``
checks its core kinds against Kubernetes ``K8S_VERSION``, and every custom resource is
checked against its vendored CRD (:mod:`mlstack.deploy.crds`); check-jsonschema checks the
compose file and the GitLab and GitHub CI files against their published schemas, actionlint
the GitHub workflow, promtool the Prometheus configs and rules; the orchestrator files must
be what ``mlstack orchestrate`` renders now; the Jenkinsfile and the devcontainer are checked
by their structure (:mod:`mlstack.deploy.structure`). Exit 1 when any check fails.

kubectl, kubernetes-validate, check-jsonschema and actionlint come with the dev environment
(``make install``), promtool with Debian's ``prometheus`` (``make system-deps``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from mlstack.deploy import crds
from mlstack.deploy.structure import declarative_problems, devcontainer_problems
from pipeline.settings import PROJECT_ROOT

K8S_VERSION = "1.32.0"
# (file, check-jsonschema's vendored schema)
SCHEMAS = (
    ("deploy/compose/compose.yaml", "vendor.compose-spec"),
    (".gitlab-ci.yml", "vendor.gitlab-ci"),
    (".github/workflows/ci.yml", "vendor.github-workflows"),
)
# (config, promtool's flags): compose's names files by their paths inside the container.
PROMETHEUS = (
    ("monitoring/prometheus/prometheus.yml", ()),
    ("deploy/compose/prometheus.yml", ("--syntax-only",)),
)
RULES = ("monitoring/prometheus/alerts.yml",)


@dataclass(frozen=True)
class Checked:
    """One file's (or kustomization's) verdict: what checked it, and what is wrong."""

    path: str
    check: str
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


class MissingTool(RuntimeError):
    """A validator the check needs is not installed."""


def tool(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``name`` from the project's environment, else from PATH."""
    beside = Path(sys.executable).parent / name
    binary = str(beside) if beside.exists() else shutil.which(name)
    if binary is None:
        hint = "make system-deps" if name == "promtool" else "make install"
        raise MissingTool(f"{name} is not installed: run `{hint}`")
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def output_problems(done: subprocess.CompletedProcess[str]) -> list[str]:
    """A failed tool's message, one problem per non-empty line (its first ten)."""
    if done.returncode == 0:
        return []
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return lines[:10] or [f"exited {done.returncode}"]


def kustomizations(root: Path) -> list[Path]:
    return sorted(
        p.parent
        for p in root.glob("**/kustomization.yaml")
        if not ({".venv", "node_modules", ".git"} & set(p.relative_to(root).parts))
    )


def check_kustomization(folder: Path, root: Path) -> list[str]:
    """Render ``folder``; core kinds strictly against Kubernetes, the rest against CRDs."""
    rendered = tool("kubectl", "kustomize", str(folder), cwd=root)
    if rendered.returncode != 0:
        return output_problems(rendered)
    documents = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    core = [d for d in documents if crds.is_core(d.get("apiVersion", ""))]
    found = [p for d in documents for p in crds.problems(d)]
    if core:
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "rendered.yaml"
            path.write_text(yaml.safe_dump_all(core))
            validated = tool(
                "kubernetes-validate", "--strict", "-k", K8S_VERSION, str(path), cwd=root
            )
            found += [p for p in output_problems(validated) if not p.startswith("INFO")]
    return found


def orchestrator_problems(root: Path) -> Iterator[Checked]:
    from mlstack.orchestrate import Tool, renderings

    for name in Tool:
        for relative, text in renderings(name, root).items():
            path = root / relative
            stale = not path.exists() or path.read_text() != text
            problem = f"stale: run `mlstack orchestrate {name.value}`"
            yield Checked(str(relative), "mlstack orchestrate", [problem] if stale else [])


def checks(root: Path) -> Iterator[Checked]:
    """Every check, in the order a reader meets the files."""
    for folder in kustomizations(root):
        check = "kustomize + kubernetes-validate --strict + CRDs"
        yield Checked(str(folder.relative_to(root)), check, check_kustomization(folder, root))
    for relative, schema in SCHEMAS:
        done = tool("check-jsonschema", "--builtin-schema", schema, relative, cwd=root)
        yield Checked(relative, f"check-jsonschema {schema}", output_problems(done))
    workflow = SCHEMAS[-1][0]
    yield Checked(workflow, "actionlint", output_problems(tool("actionlint", workflow, cwd=root)))
    for relative, flags in PROMETHEUS:
        done = tool("promtool", "check", "config", *flags, relative, cwd=root)
        yield Checked(relative, "promtool check config", output_problems(done))
    for relative in RULES:
        done = tool("promtool", "check", "rules", relative, cwd=root)
        yield Checked(relative, "promtool check rules", output_problems(done))
    yield from orchestrator_problems(root)
    jenkins = root / "Jenkinsfile"
    yield Checked("Jenkinsfile", "declarative structure", declarative_problems(jenkins.read_text()))
    devcontainer = root / ".devcontainer" / "devcontainer.json"
    found = devcontainer_problems(devcontainer, root)
    yield Checked(".devcontainer/devcontainer.json", "structure", found)


def report(results: list[Checked], echo: Callable[[str], Any]) -> None:
    for result in results:
        mark = "ok  " if result.ok else "FAIL"
        echo(f"{mark} {result.path}  ({result.check})")
        for problem in result.problems:
            echo(f"       {problem}")
    failed = sum(not r.ok for r in results)
    echo(
        f"{len(results) - failed} of {len(results)} deployable"
        + (f", {failed} failed" if failed else "")
    )


def deploy_check(
    root: Annotated[Path, typer.Option(help="The project checkout to check.")] = PROJECT_ROOT,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object: every check and its problems.")
    ] = False,
) -> None:
    """Render every kustomization and validate every deploy, CI and dev file (exit 1 if any
    fails, 2 if a validator is missing)."""
    root = root.resolve()
    try:
        results = list(checks(root))
    except MissingTool as error:
        typer.echo(f"deploy check: {error}", err=True)
        raise typer.Exit(2) from None
    ok = all(r.ok for r in results)
    if as_json:
        entries = [{**asdict(r), "ok": r.ok} for r in results]
        typer.echo(json.dumps({"ok": ok, "checks": entries}))
    else:
        report(results, typer.echo)
    if not ok:
        raise typer.Exit(1)


deploy_app = typer.Typer(help="What is deployable: `mlstack deploy check`.", no_args_is_help=True)
deploy_app.command("check")(deploy_check)
