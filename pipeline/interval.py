"""Split-conformal prediction intervals for a regressor: calibrated once, served per row.

The evaluate stage calibrates the interval on held-out rows the model never saw: with
absolute residuals ``|y - ŷ|`` of ``n`` calibration rows, the half width is their
``ceil((n + 1) * coverage) / n`` empirical quantile, so ``ŷ ± half_width`` holds the true
value with probability at least ``coverage`` on rows exchangeable with the calibration
rows (Vovk et al. 2005; Lei et al. 2018). No model assumption is needed, which is why it
is the interval mlstack serves. The interval travels with the model version as two tags
(:data:`HALF_WIDTH_TAG`, :data:`COVERAGE_TAG`), read by the package stage, the service
and the drift job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

HALF_WIDTH_TAG = "mlstack.interval.half_width"
COVERAGE_TAG = "mlstack.interval.coverage"


class IntervalError(ValueError):
    """Too few calibration rows for the coverage asked, or a tag that is no number."""


@dataclass(frozen=True)
class Interval:
    """``prediction ± half_width``, holding the truth with probability ``coverage``."""

    half_width: float
    coverage: float

    def bounds(self, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values = np.asarray(prediction, dtype="float64")
        return values - self.half_width, values + self.half_width

    def tags(self) -> dict[str, str]:
        """The model version's tags; ``repr`` keeps every digit of the float."""
        return {HALF_WIDTH_TAG: repr(self.half_width), COVERAGE_TAG: repr(self.coverage)}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> Interval | None:
        """The interval a model version's tags (or a Bento model's labels) carry, if any."""
        if HALF_WIDTH_TAG not in tags:
            return None
        try:
            half_width, coverage = float(tags[HALF_WIDTH_TAG]), float(tags[COVERAGE_TAG])
        except (KeyError, ValueError) as error:
            raise IntervalError(f"interval tags are not numbers: {dict(tags)!r}") from error
        if not (math.isfinite(half_width) and half_width >= 0 and 0 < coverage < 1):
            raise IntervalError(f"interval tags out of range: {dict(tags)!r}")
        return cls(half_width, coverage)


def calibrate(residuals: np.ndarray, coverage: float) -> Interval:
    """The split-conformal interval of absolute ``residuals`` at nominal ``coverage``."""
    errors = np.sort(np.abs(np.asarray(residuals, dtype="float64")))
    n = len(errors)
    rank = math.ceil((n + 1) * coverage)
    if rank > n:
        raise IntervalError(
            f"{n} calibration rows cannot give a {coverage:.0%} interval "
            f"(at least {math.ceil(coverage / (1 - coverage))} are needed)"
        )
    return Interval(float(errors[rank - 1]), coverage)
