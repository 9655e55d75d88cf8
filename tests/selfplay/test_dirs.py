"""Whole directories swapped in safely: the old one or the new one exists at every moment."""

from __future__ import annotations

from selfplay.dirs import copy_dir, partial_dir, swap_in


def _dir(path, text):
    path.mkdir()
    (path / "weights").write_text(text)
    return path


def test_swap_replaces_the_old_directory_and_leaves_nothing_aside(tmp_path):
    target = _dir(tmp_path / "model", "old")
    partial = partial_dir(target)
    _dir(partial, "new")
    swap_in(partial, target)
    assert (target / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_kill_between_the_two_renames_gives_the_old_directory_back(tmp_path):
    target = _dir(tmp_path / "model", "old")
    partial = partial_dir(target)
    _dir(partial, "new")
    target.rename(tmp_path / "model.old")  # where swap_in's first rename puts it; the kill comes here
    again = partial_dir(target)  # the next try
    assert (target / "weights").read_text() == "old" and not again.exists()
    _dir(again, "newer")
    swap_in(again, target)
    assert (target / "weights").read_text() == "newer"


def test_copy_dir_into_an_existing_target(tmp_path):
    source = _dir(tmp_path / "a", "a")
    target = _dir(tmp_path / "b", "b")
    copy_dir(source, target)
    assert (target / "weights").read_text() == "a"
