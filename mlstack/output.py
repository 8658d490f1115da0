"""Output for people, kept whole when piped: rich wraps at 80 columns when stdout is not a
terminal, which broke figures and truncated report paths in logs.

Programs and tests do not read this output: every command they call has ``--json``.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

WIDE = 1000  # wide enough for any table row; a table never grows past its content


def console(*, stderr: bool = False) -> Console:
    """A console whose text lines are never wrapped (``soft_wrap``), on a terminal or not."""
    return Console(stderr=stderr, soft_wrap=True)


def print_table(out: Console, table: Table) -> None:
    """A table at its natural width when piped, so no cell is cut to ``…``."""
    if out.is_terminal:
        out.print(table)
        return
    Console(file=out.file, width=WIDE, soft_wrap=True, no_color=out.no_color).print(table)
