"""This test process's own Prometheus samples (the serving code's metrics, in-process)."""

from __future__ import annotations

from prometheus_client import REGISTRY


def sample(metric: str, **labels: str) -> float:
    """The sum of this process's ``metric`` samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(
        found.value
        for family in REGISTRY.collect()
        for found in family.samples
        if found.name == metric and wanted <= set(found.labels.items())
    )
