"""The README's commands cannot rot: every ``mlstack`` command and option it shows exists
in the CLI, every ``make`` target it names exists in the Makefile, and every program it
runs comes from the project's environment (``.venv/bin``, after ``source
.venv/bin/activate``) or from the system, so none needs ``uv`` or ``~/.local/bin`` on the
PATH of a fresh shell."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main

from mlstack.cli import app

ENVIRONMENT = Path(sys.executable).parent  # .venv/bin
SHELL_BUILTINS = {"source", "export", "cd"}
# Programs the README runs from Debian's packages (make system-deps installs them) or that
# a machine already has; anything else must come from the project's environment.
SYSTEM = {
    "make",
    "curl",
    "prometheus",
    "prometheus-pushgateway",
    "promtool",
    "kubectl",
    "cp",
    "git",
}

ROOT = Path(__file__).resolve().parents[1]


def readme_commands(program: str) -> list[list[str]]:
    """Lines of the README's ``bash`` and ``cron`` blocks that run ``program``, split."""
    blocks = re.findall(r"```(?:bash|cron)\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            if not re.search(rf"(^|\s){program}\s", line):
                continue
            words = shlex.split(line, comments=True)
            # The program, not a flag's value of that name (`kubectl -n mlstack ...`).
            at = [i for i, w in enumerate(words) if w == program and words[i - 1 : i] != ["-n"]]
            if at:
                commands.append(words[at[0] + 1 :])
    return commands


def resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The (sub-)command the words name, and the words left for its options."""
    command: Any = typer.main.get_command(app)
    rest = list(words)
    while hasattr(command, "list_commands") and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = command.get_command(typer.Context(command), name)
        assert sub is not None, f"README runs `mlstack ... {name}`, which the CLI does not have"
        command = sub
    return command, rest


MLSTACK = readme_commands("mlstack")


def test_readme_shows_the_cli() -> None:
    shown = {" ".join(w for w in words if not w.startswith("-"))[:11] for words in MLSTACK}
    assert any(s.startswith("replay") for s in shown)
    assert any(s.startswith("drift run") for s in shown)
    assert any(s.startswith("drift sched") for s in shown)


@pytest.mark.parametrize("words", MLSTACK, ids=[" ".join(w) for w in MLSTACK])
def test_readme_mlstack_command_exists(words: list[str]) -> None:
    command, rest = resolve(words)
    known = {opt for param in command.params for opt in [*param.opts, *param.secondary_opts]}
    for word in rest:
        if word.startswith("--"):
            assert word.split("=")[0] in known, f"`mlstack {' '.join(words)}`: no option {word}"


def test_readme_make_targets_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    for words in readme_commands("make"):
        if words:
            assert words[0] in targets, (
                f"README runs `make {words[0]}`, the Makefile has no such target"
            )


def readme_programs() -> set[str]:
    """The first word of every command line in the README's ``bash`` and ``cron`` blocks
    (lines inside a multi-line quoted argument start with a quote or brace: not commands)."""
    blocks = re.findall(r"```(?:bash|cron)\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    programs = set()
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            words = line.split("#", 1)[0].split()
            if words and re.fullmatch(r"(\*/)?[0-9*/,-]+", words[0]):  # a crontab line
                words = words[words.index("&&") + 1 :] if "&&" in words else words[5:]
            words = [w for w in words if not re.fullmatch(r"[A-Z_]+=\S*", w)]  # VAR=value
            if words and re.fullmatch(r"[\w./-]+", words[0]):
                programs.add(words[0].removeprefix(".venv/bin/"))
    return programs


def test_readme_programs_come_from_the_environment_or_the_system() -> None:
    programs = readme_programs()
    assert {"dvc", "bentoml", "mlstack", "mlflow", "make", "source"} <= programs
    for program in programs - SHELL_BUILTINS - SYSTEM:
        assert (ENVIRONMENT / program).exists(), (
            f"the README runs `{program}`, which the project's environment does not have"
        )
