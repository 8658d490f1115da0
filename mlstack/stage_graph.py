"""The DVC pipeline's stage graph, read through DVC's own index (not a re-parse of
``dvc.yaml``): what ``mlstack orchestrate`` renders for every orchestrator."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Stage:
    """One DVC stage: its name and the stages whose outputs it reads."""

    name: str
    upstream: tuple[str, ...]

    @property
    def command(self) -> str:
        return f"dvc repro --single-item {self.name}"


def stage_graph(root: Path) -> list[Stage]:
    """The stages of ``root``'s ``dvc.yaml`` in dependency order (ties in file order)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        index = repo.index
        names = [stage.name for stage in index.stages]
        upstream: dict[str, set[str]] = {name: set() for name in names}
        for stage, dependency in index.graph.edges:  # (stage, the stage it depends on)
            upstream[stage.name].add(dependency.name)
    ordered: list[Stage] = []
    done: set[str] = set()
    while len(ordered) < len(names):
        ready = [n for n in names if n not in done and upstream[n] <= done]
        if not ready:
            raise ValueError(f"dvc.yaml: the stages {sorted(set(names) - done)} form a cycle")
        for name in ready:
            ordered.append(Stage(name, tuple(n for n in names if n in upstream[name])))
            done.add(name)
    return ordered
