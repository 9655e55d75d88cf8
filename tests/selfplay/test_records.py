"""The Problem row: content-hash ids, Parquet/JSON round trips, clear errors on bad rows."""

import json

import pyarrow as pa
import pytest

from selfplay.records import Problem


def _problem(**changes):
    fields = dict(source="procedural:addition", task="addition", question="457+68=?", answer="525",
                  meta={"operands": [457, 68]}, difficulty=3, split="train")
    fields.update(changes)
    return Problem(**fields)


def test_id_is_a_content_hash_of_task_question_answer_and_meta():
    assert _problem().id == _problem(source="elsewhere", split="heldout", difficulty=None).id
    assert _problem().id != _problem(answer="526").id
    assert _problem().id != _problem(meta={"operands": [68, 457]}).id
    assert _problem().id != _problem(task="math").id


def test_row_round_trips_through_parquet():
    code = Problem(source="file:x.jsonl", task="code", question="Write f.", answer="",
                   tests=[{"input": "1", "output": "2"}], meta={"entry_point": "f"})
    rows = [_problem().to_row(), code.to_row()]
    assert isinstance(rows[1]["tests"], str) and isinstance(rows[1]["meta"], str)
    table = pa.Table.from_pylist(rows)
    back = [Problem.from_row(r) for r in table.to_pylist()]
    assert back == [_problem(), code]
    assert back[1].to_dict()["tests"] == [{"input": "1", "output": "2"}]


def test_from_row_accepts_decoded_meta_and_fills_defaults():
    row = {"source": "s", "task": "addition", "question": "1+1=?", "answer": "2", "meta": {"operands": [1, 1]}}
    problem = Problem.from_row(row)
    assert problem.split == "train" and problem.tests == () and problem.difficulty is None


@pytest.mark.parametrize("change, field", [
    ({"question": ""}, "question"),
    ({"meta": "{not json"}, "meta"),
    ({"meta": "[1, 2]"}, "meta"),
    ({"tests": "{}"}, "tests"),
    ({"difficulty": "hard"}, "difficulty"),
    ({"answer": 525}, "answer"),
    ({"id": "0123abcd"}, "id"),
    ({"colour": "red"}, "unknown fields"),
])
def test_malformed_rows_name_the_field(change, field):
    row = _problem().to_row() | change
    with pytest.raises(ValueError, match=field):
        Problem.from_row(row)


def test_missing_required_field_is_named():
    row = _problem().to_row()
    del row["task"]
    with pytest.raises(ValueError, match="task: missing"):
        Problem.from_row(row)


def test_meta_must_be_json_serialisable():
    with pytest.raises(ValueError, match="JSON"):
        _problem(meta={"when": object()})


def test_row_is_plain_json():
    assert json.loads(json.dumps(_problem().to_row()))["meta"] == json.dumps({"operands": [457, 68]})
