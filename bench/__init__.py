"""Benchmarks: serving, the drift job and the pipeline, each beside its baseline.

Run them with ``make bench`` (or ``uv run python -m bench.<name>``); each prints Markdown
tables. They measure and print; they never assert on timing. Results and the machine
they were taken on are in ``docs/benchmarks.md``.
"""
