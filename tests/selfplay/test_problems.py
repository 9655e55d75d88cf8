"""Problem sources: procedural, JSONL/JSON/Parquet files, saved dataset dirs; bad rows recorded."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selfplay.problems import BadRow, SourceConfig, SourceError, TaskSpec, check_source, iter_problems
from selfplay.records import Problem
from tests.fixtures import datasets as fixtures

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
    with pytest.raises(SourceError, match="splits"):
        list(iter_problems(SourceConfig(kind="hf_dir", path=str(tmp_path / "ds"), task="math", split="test")))


def test_missing_file_and_limit(tmp_path):
    with pytest.raises(SourceError, match="matches no"):
        list(iter_problems(_file_source(tmp_path / "nope.jsonl")))
    cfg = SourceConfig(kind="tasks", tasks=[TaskSpec("addition", 10, 2)], limit=3)
    assert len(list(iter_problems(cfg))) == 3


def test_rows_without_a_task_are_rejected_not_guessed(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n")
    cfg = SourceConfig(kind="file", path=str(path), columns={"question": "problem", "answer": "solution"})
    (item,) = iter_problems(cfg)
    assert isinstance(item, BadRow) and "no task" in item.reason


def test_a_preset_reads_a_saved_dataset_directory_too(tmp_path):
    path = fixtures.write_hf_dir("gsm8k", tmp_path, n=5)
    problems = list(iter_problems(SourceConfig(kind="hf_dir", path=str(path), layout="gsm8k")))
    assert [p.answer for p in problems] == [r["answer"].rsplit("#### ", 1)[1] for r in fixtures.gsm8k_rows(5)]


@pytest.mark.parametrize("layout, shape, bad_reason", [
    ("gsm8k", "gsm8k", "no '####' marker"), ("math", "math", "has no \\boxed{}"), ("math", "math500", "has no \\boxed{}"),
    ("code", "mbpp", "tests: column 'test_list' is missing or empty"), ("code", "humaneval", "SyntaxError"),
])
def test_bad_rows_of_each_shape_are_recorded_with_their_reason_and_the_rest_read(layout, shape, bad_reason, tmp_path):
    items = list(iter_problems(SourceConfig(kind="file", path=str(fixtures.write(shape, tmp_path, bad=True)), layout=layout)))
    problems = [i for i in items if isinstance(i, Problem)]
    reasons = [i.reason for i in items if isinstance(i, BadRow)]
    assert len(problems) == 24 + 2  # every good row, the duplicate (the round drops it) and the long prompt
    assert reasons[0].startswith("not UTF-8 text: byte 0xe9 at ")
    assert bad_reason in reasons[1]
    assert reasons[2].startswith("row is 10,48") and reasons[2].endswith("bytes; source.max_row_bytes is 1,048,576")
    assert len(reasons) == 3


def test_an_empty_file_is_refused_at_start(tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "blank.jsonl").write_text("\n\n")
    for name in ("empty.jsonl", "blank.jsonl"):
        with pytest.raises(SourceError, match=f"{tmp_path / name} (is empty|has no rows)"):
            check_source(SourceConfig(kind="file", path=str(tmp_path / name), layout="gsm8k"))
    pq.write_table(pa.Table.from_pylist([], schema=pa.schema([("question", pa.string())])), tmp_path / "e.parquet")
    with pytest.raises(SourceError, match="e.parquet has no rows"):
        check_source(SourceConfig(kind="file", path=str(tmp_path / "e.parquet"), task="math"))


def test_a_missing_column_names_the_column_and_the_file(tmp_path):
    mbpp = fixtures.write("mbpp", tmp_path, n=3)
    with pytest.raises(SourceError, match=rf"{mbpp} has no column 'problem' or 'question' \(the math layout's question"):
        check_source(SourceConfig(kind="file", path=str(mbpp), layout="math"))
    path = fixtures.write("gsm8k", tmp_path, n=3)
    with pytest.raises(SourceError, match=rf"{path} has no column 'prompt' .*source.columns.question=.*columns: answer, question"):
        list(iter_problems(SourceConfig(kind="file", path=str(path), task="math", columns={"question": "prompt"})))
    apps = fixtures.write("apps", tmp_path, n=3)
    with pytest.raises(SourceError, match=rf"{apps} has no column 'answer' or 'solution'"):
        check_source(SourceConfig(kind="file", path=str(apps), layout="math"))


def test_a_file_that_is_not_utf8_json_is_refused_at_start(tmp_path):
    (tmp_path / "latin1.jsonl").write_bytes("".join(json.dumps({"question": "q"}).replace("q", "caf\xe9") + "\n" for _ in range(3)).encode("latin-1"))
    with pytest.raises(SourceError, match=r"latin1.jsonl: no row is a JSON object \(the first: not UTF-8 text: byte 0xe9"):
        check_source(SourceConfig(kind="file", path=str(tmp_path / "latin1.jsonl"), task="math"))
    (tmp_path / "bad.json").write_bytes(b'[{"question": "caf\xe9"}]')
    with pytest.raises(SourceError, match="bad.json is not UTF-8 text"):
        check_source(SourceConfig(kind="file", path=str(tmp_path / "bad.json"), task="math"))
    (tmp_path / "rows.json").write_text('{"question": "a"}\n{"question": "b"}\n')
    with pytest.raises(SourceError, match="rows.json is not valid JSON .*JSON lines go in a .jsonl file"):
        check_source(SourceConfig(kind="file", path=str(tmp_path / "rows.json"), task="math"))
    (tmp_path / "fake.parquet").write_text("not parquet")
    with pytest.raises(SourceError, match="fake.parquet is not a Parquet file"):
        check_source(SourceConfig(kind="file", path=str(tmp_path / "fake.parquet"), task="math"))


def test_unknown_layout_and_answer_from_fail_at_start():
    with pytest.raises(ValueError, match="layout must be one of generic, gsm8k, math, code"):
        SourceConfig(kind="file", path="x", layout="mbpp")
    with pytest.raises(ValueError, match="answer_from must be one of auto, ####, boxed, field"):
        SourceConfig(kind="file", path="x", answer_from="last")
