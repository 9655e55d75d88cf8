"""Files and whole directories written safely: the old one or the new one exists at every moment."""

from __future__ import annotations

import json
import uuid

import fsspec

from selfplay.storage import copy_dir, partial_dir, swap_in, write_file, write_json


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


def test_write_json_replaces_the_file_whole_with_the_reports_format(tmp_path):
    target = tmp_path / "eval.json"
    target.write_text("old")
    report = {"b": [1, 2.5], "a": {"é": None}}
    write_json(target, report)
    assert target.read_text() == json.dumps(report, indent=2, sort_keys=True) + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.json"]  # no temp file left beside it


def test_write_file_to_a_relative_path_and_to_a_uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_file("report.md", b"# report\n")
    assert (tmp_path / "report.md").read_bytes() == b"# report\n"
    root = f"memory://storage-test-{uuid.uuid4().hex}"
    write_json(f"{root}/round-0/stats.json", {"accepted": 1})
    assert fsspec.open(f"{root}/round-0/stats.json", "rb").open().read() == b'{\n  "accepted": 1\n}\n'
