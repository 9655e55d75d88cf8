"""Problem sources: procedural, JSONL/JSON/Parquet files, saved dataset dirs; bad rows recorded."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selfplay.problems import BadRow, SourceConfig, TaskSpec, iter_problems
from selfplay.records import Problem

ROWS = [
    {"problem": "What is 1/2 + 1/4?", "solution": "3/4", "uid": "a1"},
    {"problem": "What is 2^10?", "solution": 1024, "uid": "a2"},
]


def _file_source(path, **kw):
    return SourceConfig(kind="file", path=str(path), task="math",
                        columns={"question": "problem", "answer": "solution", "id": "uid"}, **kw)


def test_procedural_source_gives_the_families_problems():
    cfg = SourceConfig(kind="tasks", tasks=[TaskSpec("addition", 5, 3), TaskSpec("multiplication", 3, 2)])
    problems = list(iter_problems(cfg))
    assert [p.task for p in problems] == ["addition"] * 5 + ["multiplication"] * 3
    assert len({p.id for p in problems}) == 8
    assert problems == list(iter_problems(cfg)), "deterministic given the seed"


def test_jsonl_rows_map_columns_and_bad_rows_carry_their_reason(tmp_path):
    path = tmp_path / "p.jsonl"
    lines = [json.dumps(ROWS[0]), "{not json", json.dumps({"solution": "1"}), "[1, 2]", "", json.dumps(ROWS[1])]
    path.write_text("\n".join(lines) + "\n")
    items = list(iter_problems(_file_source(path)))
    good = [i for i in items if isinstance(i, Problem)]
    bad = [i for i in items if isinstance(i, BadRow)]
    assert [(p.question, p.answer, p.task) for p in good] == [
        ("What is 1/2 + 1/4?", "3/4", "math"), ("What is 2^10?", "1024", "math")]
    assert good[0].meta["source_id"] == "a1"
    reasons = [b.reason for b in bad]
    assert len(bad) == 3 and "not valid JSON" in reasons[0] and "question" in reasons[1] and "not an object" in reasons[2]
    assert all(b.where.startswith(str(path)) for b in bad)


def test_parquet_and_directory_sources_read_the_same_rows(tmp_path):
    pq.write_table(pa.Table.from_pylist([{**r, "solution": str(r["solution"])} for r in ROWS]), tmp_path / "p.parquet")
    from_file = [p.question for p in iter_problems(_file_source(tmp_path / "p.parquet"))]
    from_dir = [p.question for p in iter_problems(_file_source(tmp_path))]
    assert from_file == from_dir == [r["problem"] for r in ROWS]


def test_saved_dataset_directory_with_splits(tmp_path):
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_list([{**r, "solution": str(r["solution"])} for r in ROWS])}).save_to_disk(tmp_path / "ds")
    cfg = SourceConfig(kind="hf_dir", path=str(tmp_path / "ds"), task="math", split="train",
                       columns={"question": "problem", "answer": "solution"})
    assert [p.answer for p in iter_problems(cfg)] == ["3/4", "1024"]
    with pytest.raises(ValueError, match="splits"):
        list(iter_problems(SourceConfig(kind="hf_dir", path=str(tmp_path / "ds"), task="math", split="test")))


def test_missing_file_and_limit(tmp_path):
    with pytest.raises(FileNotFoundError, match="matches no"):
        list(iter_problems(_file_source(tmp_path / "nope.jsonl")))
    cfg = SourceConfig(kind="tasks", tasks=[TaskSpec("addition", 10, 2)], limit=3)
    assert len(list(iter_problems(cfg))) == 3


def test_rows_without_a_task_are_rejected_not_guessed(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n")
    cfg = SourceConfig(kind="file", path=str(path), columns={"question": "problem", "answer": "solution"})
    (item,) = iter_problems(cfg)
    assert isinstance(item, BadRow) and "no task" in item.reason
