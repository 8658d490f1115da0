"""The serving benchmark's tables: medians over rounds per setup and load, and ratios
paired within each round."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from bench.harness import markdown
from bench.serving_load import LOADS, SETUPS, Load, Result


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def figures(results: Sequence[Result]) -> str:
    """One line per setup and load: medians over rounds, errors summed."""
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.setup, r.load.name), []).append(r)
    rows = []
    for (setup, _), runs in groups.items():
        load = runs[0].load
        good = _median([r.good_per_second for r in runs])
        calls = [r.rows_per_call for r in runs if r.rows_per_call is not None]
        server, client = sum(r.server_errors for r in runs), sum(r.client_errors for r in runs)
        sockets = sum(r.socket_errors for r in runs)
        rows.append(
            [
                f"({setup}) {SETUPS[setup]}",
                load.name,
                f"{good:,.0f}",
                " / ".join(f"{r.good_per_second:,.0f}" for r in runs),
                f"{good * load.rows:,.0f}",
                f"{_median([r.p50_ms for r in runs]):.1f}",
                f"{_median([r.p99_ms for r in runs]):.1f}",
                f"{server + client + sockets} ({server} 5xx, {client} 4xx, {sockets} socket)",
                f"{_median(calls):.1f}" if calls else "",
                f"{sum(r.ok for r in runs):,} in {sum(r.seconds for r in runs):.0f} s",
            ]
        )
    headers = [
        "setup",
        "load",
        "good answers/s (median)",
        "per round",
        "rows/s",
        "p50 ms",
        "p99 ms",
        "errors (all rounds)",
        "rows per model call",
        "good answers",
    ]
    return markdown(headers, rows)


def paired(results: Sequence[Result], top: str, bottom: str, load: Load, of: str) -> list[float]:
    """``of`` (good_per_second or p99_ms) of ``top`` over ``bottom``, one ratio per round
    that measured both."""
    by = {(r.setup, r.load.name, r.round): float(getattr(r, of)) for r in results}
    rounds = sorted({r.round for r in results})
    return [
        by[(top, load.name, n)] / by[(bottom, load.name, n)]
        for n in rounds
        if by.get((top, load.name, n)) is not None and by.get((bottom, load.name, n))
    ]


def ratio(results: Sequence[Result], top: str, bottom: str, load: Load, of: str) -> str:
    """The median of the paired ratios, with their range."""
    ratios = paired(results, top, bottom, load, of)
    if not ratios:
        return "n/a"
    spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""
    return f"{statistics.median(ratios):.2f}{spread}"


def ratios(results: Sequence[Result]) -> str:
    """Per load: good answers per second of one setup over another, and p99(a)/p99(d)."""
    measured = {r.setup for r in results}
    columns = [
        ("a/c (vs naive)", "a", "c", "good_per_second"),
        ("a/d (vs ceiling)", "a", "d", "good_per_second"),
        ("b/a (capture off vs on)", "b", "a", "good_per_second"),
        ("p99 a/d (target ≤ 1.2 at c=16, ≤ 1.1 at c=64)", "a", "d", "p99_ms"),
        ("a/l (vs in-process limit)", "a", "l", "good_per_second"),
        ("a/m (vs MLServer)", "a", "m", "good_per_second"),
        ("a/o (vs baseline checkout)", "a", "o", "good_per_second"),
        ("p99 a/o", "a", "o", "p99_ms"),
        ("r/a (regressor vs classifier)", "r", "a", "good_per_second"),
    ]
    shown = [c for c in columns if {c[1], c[2]} <= measured]
    rows = [[x.name, *(ratio(results, t, b, x, of) for _, t, b, of in shown)] for x in LOADS]
    return markdown(["load", *(c[0] for c in shown)], rows)


def tables(results: Sequence[Result]) -> str:
    """Medians over rounds per setup and load; ratios paired within each round."""
    rounds = len({r.round for r in results})
    return (
        f"{figures(results)}\n\nRatios, each the median of the {rounds} rounds' paired ratios "
        f"(their range): good answers per second unless the column says p99; a/l is the "
        f"service's good rows per second over the limit's scored rows per second (for a "
        f"one-row load, requests and rows are one unit):\n\n{ratios(results)}"
    )
