"""``write_json``, the project's one JSON file writer: all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.io import read_json, write_json


def test_writes_sorted_indented_json_and_makes_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "metrics.json"
    write_json({"b": 1, "a": [1, 2]}, path)
    assert read_json(path) == {"a": [1, 2], "b": 1}
    assert path.read_text() == json.dumps({"a": [1, 2], "b": 1}, indent=2, sort_keys=True) + "\n"
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    write_json({"run": 1}, path)
    before = path.read_text()
    with pytest.raises(TypeError):
        write_json({"run": 2, "when": object()}, path)  # not JSON-serialisable
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_failed_rename_removes_the_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "summary.json"
    write_json({"run": 1}, path)

    def refuse(src: object, dst: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr("pipeline.io.os.replace", refuse)
    with pytest.raises(OSError, match="disk gone"):
        write_json({"run": 2}, path)
    assert read_json(path) == {"run": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
