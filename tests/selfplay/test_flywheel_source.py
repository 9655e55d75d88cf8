"""The flywheel on a user's dataset (selfplay.splits): rounds drawn from a file, evaluated on its
held-out share or on a test file, the split recorded, bad rows recorded instead of crashing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from selfplay.flywheel import flywheel_config, run_flywheel
from selfplay.problems import SourceError, read_ids
from tests.fixtures import datasets as fixtures

ROOT = Path(__file__).parents[2]
BAD_ROW_REASONS = ("not UTF-8 text", "row is 10,48")
"""Bad rows every fixture file with `bad=True` holds, besides its preset's own bad gold."""


def on_files(out_dir, start_model, source, **kw):
    """A flywheel on `source` that does every step on a few problems with short outputs."""
    plain = {
        "out_dir": str(out_dir), "start_model": str(start_model), "rounds": 1, "source": source,
        "solver": {"engine": {"engine": "hf", "device": "cpu"}, "num_cpus": 0.5},
        "strategy": {"k": 2, "wave": 2, "max_samples": 2, "revisions": 0, "unsolvable_after": 2,
                     "sampling": {"max_tokens": 16, "critic_max_tokens": 8}},
        "verifier": {"workers": 1},
        "distill": {"min_steps": 2, "max_steps": 2, "batch_size": 4, "threads": 1},
        "evaluate": {"samples": 0, "max_tokens": 16, "critic_examples": 2, "critic_max_tokens": 8},
    }
    return flywheel_config(plain | kw)


def test_two_rounds_on_a_file_are_evaluated_on_its_held_out_share(ray_cluster, random_model_dir, tmp_path):
    path = fixtures.write("gsm8k", tmp_path / "data", n=16, bad=True)
    cfg = on_files(tmp_path / "fw", random_model_dir, {"kind": "file", "layout": "gsm8k", "path": str(path)},
                   rounds=2, control=False, heldout={"share": 0.3}, problems_per_round=4)
    state = run_flywheel(cfg)

    split = state["split"]
    train, held = read_ids(split["train"]["ids"]), read_ids(split["heldout"]["ids"])
    assert not train & held and len(train | held) == 17  # 16 rows + the long question: every problem on one side
    assert split["train"]["problems"] == len(train) and split["heldout"]["problems"] == len(held) > 0
    assert split["heldout"]["share"] == 0.3 and split["heldout"]["source"] == str(path)
    assert split["train"]["bad_rows"] == 3 and split["train"]["duplicates"] == 1
    assert split["draw"]["problems_per_round"] == 4
    assert json.loads((Path(cfg.out_dir) / "flywheel.json").read_text())["split"] == split

    assert [r["round"] for r in state["rounds"]] == [0, 1, 2]
    for r in state["rounds"]:
        assert 0.0 <= r["pass_at_1"] <= 1.0 and r["difficulty"] is None and r["pass_at_1_by_difficulty"].keys() == {"-"}
    for k in (1, 2):  # each round trained on its own draw of train problems only
        drawn = read_ids(str(cfg.problems_dir / f"round-{k}.ids"))
        assert len(drawn) == 4 and drawn <= train and state["rounds"][k]["problems"] == 4
        report = json.loads((Path(cfg.out_dir) / "verified" / "eval" / f"round-{k}.json").read_text())
        assert sum(c["problems"] for c in report["bands"]["hard"]["cells"]["math"].values()) == len(held)
        reasons = [r["reason"] for r in report["rejected"]]  # the file's bad rows, skipped with their reason
        assert all(any(r.startswith(bad) for r in reasons) for bad in BAD_ROW_REASONS)
        assert any("no '####' marker" in r for r in reasons)
    assert "| verified | 2 |" in (Path(cfg.out_dir) / "report.md").read_text()


def test_a_test_file_is_the_held_out_set_scored_by_level(ray_cluster, random_model_dir, tmp_path):
    train_file = fixtures.write("math", tmp_path / "train", n=12)
    test_file = fixtures.write("math", tmp_path / "test", n=6, bad=True)  # its 6 good rows are in the train file too
    cfg = on_files(tmp_path / "fw", random_model_dir, {"kind": "file", "layout": "math", "path": str(train_file)},
                   heldout={"path": str(test_file)})
    state = run_flywheel(cfg)
    assert state["split"]["train"]["problems"] == 6 and state["split"]["train"]["also_held_out"] == 6
    assert state["split"]["heldout"]["problems"] == 7 and state["split"]["heldout"]["source"] == str(test_file)
    for key in ("rounds", "control"):
        assert [r["round"] for r in state[key]] == [0, 1]
        assert state[key][1]["problems"] == 6 and set(state[key][1]["pass_at_1_by_difficulty"]) == {"1", "2", "3", "4", "5"}
    report = json.loads((Path(cfg.out_dir) / "verified" / "eval" / "round-1.json").read_text())
    reasons = sorted(r["reason"] for r in report["rejected"])
    assert len(reasons) == 4 and reasons[1].startswith("duplicate problem")


@pytest.mark.parametrize("write, message", [
    (lambda d: (d / "test.jsonl").write_text("") and None, "test.jsonl is empty"),
    (lambda d: fixtures.write("mbpp", d), r"mbpp.jsonl has no column 'problem' or 'question'"),
])
def test_a_held_out_file_that_cannot_be_a_source_fails_before_any_model_loads(tmp_path, write, message):
    (tmp_path / "held").mkdir()
    write(tmp_path / "held")
    held = next((tmp_path / "held").iterdir())
    cfg = on_files(tmp_path / "fw", "no-such-model", {"kind": "file", "layout": "math",
                                                      "path": str(fixtures.write("math", tmp_path))},
                   heldout={"path": str(held)})
    with pytest.raises(SourceError, match=message):
        run_flywheel(cfg)


def test_the_command_line_names_a_bad_source_file_and_exits_2(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    proc = subprocess.run([sys.executable, "-m", "selfplay.flywheel", "source=gsm8k", f"source.path={tmp_path / 'empty.jsonl'}",
                           "start_model=no-such-model", f"out_dir={tmp_path / 'fw'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "source error: " in proc.stderr and "empty.jsonl is empty" in proc.stderr, proc.stderr[-2000:]
