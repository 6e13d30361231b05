"""Atomic folder writes: all or nothing, replace or rename-wins, stale leftovers cleared."""

from __future__ import annotations

import pytest

from tailorml.models.atomic import atomic_directory, remove_stale_temporaries


def test_folder_appears_only_when_complete(tmp_path):
    dest = tmp_path / "out"
    with atomic_directory(dest) as tmp:
        (tmp / "a.txt").write_text("a")
        assert not dest.exists()
    assert (dest / "a.txt").read_text() == "a"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failure_leaves_nothing(tmp_path):
    dest = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_directory(dest) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_replace_and_rename_wins(tmp_path):
    dest = tmp_path / "out"
    with atomic_directory(dest) as tmp:
        (tmp / "v").write_text("1")
    with atomic_directory(dest) as tmp:
        (tmp / "v").write_text("2")
    assert (dest / "v").read_text() == "2"
    with atomic_directory(dest, replace=False) as tmp:
        (tmp / "v").write_text("3")
    assert (dest / "v").read_text() == "2"  # the first copy wins
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_stale_temporaries_are_removed(tmp_path):
    (tmp_path / ".tmp-step-5-123-abc").mkdir()
    (tmp_path / "step-4").mkdir()
    remove_stale_temporaries(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["step-4"]
