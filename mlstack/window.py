"""Time windows on the command line: ``--since``, ``--until``, ``--last`` and durations.

``mlstack drift`` and ``mlstack retrain`` read a window of the capture log the same way.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import typer

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``24h``, ``7d`` (or a sum like ``1h30m``)."""
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != text.strip().lower():
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 15m, 24h or 7d")
    total = timedelta()
    try:
        for number, unit in parts:
            total += timedelta(**{_UNITS[unit]: float(number)})
    except OverflowError:
        raise typer.BadParameter(f"{text!r} is longer than any window can be") from None
    if total <= timedelta():
        raise typer.BadParameter(f"{text!r} must be longer than zero")
    return total


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; without a zone it is taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 time like 2026-01-31T12:00Z"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_window(
    since: str | None, until: str | None, last: str | None
) -> tuple[datetime | None, datetime | None]:
    """``--since``/``--until``/``--last`` as a capture window (``None``: open on that side);
    ``mlstack retrain`` parses its window the same way."""
    if last is not None and since is not None:
        raise typer.BadParameter("give --since or --last, not both")
    end = parse_time(until) if until else None
    start = parse_time(since) if since else None
    if last is not None:
        try:
            start = (end or datetime.now(UTC)) - parse_duration(last)
        except OverflowError:
            raise typer.BadParameter(f"--last {last!r} reaches before the year 1") from None
    if start is not None and start >= (end or datetime.now(UTC)):
        raise typer.BadParameter(
            f"the window starts ({start.isoformat()}) at or after it ends "
            f"({(end.isoformat() if end else 'now')}): --since must be before --until"
        )
    return start, end
