"""A flywheel's split of a user's source: held-out problems by problem id, never also trained on;
each round's draw from the rest."""

from __future__ import annotations

import json
import random

import pytest

from selfplay.problems import SourceConfig, SourceError, read_ids
from selfplay.splits import HELDOUT_IDS, TRAIN_IDS, draw, in_share, split_source
from tests.fixtures import datasets as fixtures


def _gsm8k(path) -> SourceConfig:
    return SourceConfig(kind="file", layout="gsm8k", path=str(path))


def test_a_share_is_held_out_by_problem_id_whatever_the_row_order(tmp_path):
    path = fixtures.write("gsm8k", tmp_path / "a", n=40, bad=True)
    record = split_source(_gsm8k(path), None, 0.25, tmp_path / "split")
    train, held = read_ids(str(tmp_path / "split" / TRAIN_IDS)), read_ids(str(tmp_path / "split" / HELDOUT_IDS))
    assert not train & held and len(train | held) == 41  # 40 rows + the long question; bad rows and the repeat are not problems
    assert all(in_share(i, 0.25) for i in held) and 3 < len(held) < 20
    assert record["train"] | {"problems": len(train), "bad_rows": 3, "duplicates": 1, "also_held_out": 0} == record["train"]
    assert record["heldout"]["problems"] == len(held) and record["heldout"]["share"] == 0.25
    assert record["heldout"]["rule"].startswith("held out when int(sha256('heldout|' + problem_id)")

    lines = path.read_bytes().splitlines()
    random.Random(0).shuffle(lines)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "shuffled.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    split_source(_gsm8k(tmp_path / "b" / "shuffled.jsonl"), None, 0.25, tmp_path / "split-b")
    assert read_ids(str(tmp_path / "split-b" / HELDOUT_IDS)) == held


def test_a_test_file_is_held_out_and_its_problems_leave_train(tmp_path):
    train_file = fixtures.write("math", tmp_path / "train", n=12)
    test_file = fixtures.write("math", tmp_path / "test", n=6, bad=True)  # rows 0-5 are in the train file too
    record = split_source(SourceConfig(kind="file", layout="math", path=str(train_file)),
                          SourceConfig(kind="file", layout="math", path=str(test_file)), 0.2, tmp_path / "split")
    train, held = read_ids(str(tmp_path / "split" / TRAIN_IDS)), read_ids(str(tmp_path / "split" / HELDOUT_IDS))
    assert len(held) == 7 and len(train) == 6 and not train & held
    assert record["train"]["also_held_out"] == 6 and record["heldout"]["source"] == str(test_file)
    assert record["heldout"]["bad_rows"] == 3 and record["heldout"]["duplicates"] == 1 and record["heldout"]["rule"] is None


def test_each_round_draws_its_problems_with_its_own_seed(tmp_path):
    split_source(_gsm8k(fixtures.write("gsm8k", tmp_path, n=30)), None, 0.2, tmp_path / "s")
    train = read_ids(str(tmp_path / "s" / TRAIN_IDS))
    one, two = (read_ids(str(draw(tmp_path / "s", k, 5, seed=0))) for k in (1, 2))
    assert len(one) == len(two) == 5 and one <= train and two <= train and one != two
    assert read_ids(str(draw(tmp_path / "s", 1, 5, seed=0))) == one  # written once, read by both arms
    assert (tmp_path / "s" / "round-1.ids").read_text().count("\n") == 5


def test_a_source_too_small_for_its_share_is_refused(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(fixtures.gsm8k_rows(1)[0]) + "\n")
    with pytest.raises(SourceError, match="no held-out problem in heldout.share=0.01 of the 1 problems"):
        split_source(_gsm8k(path), None, 0.01, tmp_path / "s")
