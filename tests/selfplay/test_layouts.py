"""Row layouts (selfplay/layouts.py) on files in each dataset's own shape: the gold is extracted
up front, the verifier accepts each row's reference solution and refuses a wrong one."""

from __future__ import annotations

import json

import pytest

import verifiers
from selfplay.problems import BadRow, SourceConfig, iter_problems
from tests.fixtures import datasets as fixtures


def _problems(path, layout, **kw):
    items = list(iter_problems(SourceConfig(kind="file", path=str(path), layout=layout, **kw)))
    assert not [i for i in items if isinstance(i, BadRow)], items
    return items


def test_gsm8k_gold_is_after_the_last_marker_and_the_solution_stays_in_meta(tmp_path):
    rows = fixtures.gsm8k_rows(24)
    problems = _problems(fixtures.write("gsm8k", tmp_path), "gsm8k")
    assert len(problems) == 24 and {p.task for p in problems} == {"math"}
    assert [p.answer for p in problems] == [r["answer"].rsplit("####", 1)[1].strip() for r in rows]
    assert problems[0].meta["solution"] == rows[0]["answer"] and problems[0].question == rows[0]["question"]
    assert verifiers.verify(problems[3].to_dict(), f"So he has {problems[3].answer} apples.\nAnswer: {problems[3].answer}").correct
    assert not verifiers.verify(problems[3].to_dict(), "Answer: 1").correct


@pytest.mark.parametrize("shape", ["math", "math500"])
def test_math_gold_level_and_subject_on_both_layouts(shape, tmp_path):
    problems = _problems(fixtures.write(shape, tmp_path), "math")
    assert [p.answer for p in problems[:2]] == ["6", "\\frac{3}{4}"]
    assert [p.difficulty for p in problems[:6]] == [1, 2, 3, 4, 5, 1]
    key = "type" if shape == "math" else "subject"
    assert problems[0].meta[key] == "Prealgebra" and "\\boxed{6}" in problems[0].meta["solution"]
    if shape == "math500":
        assert problems[0].meta["source_id"] == "test/prealgebra/0.json"
    assert verifiers.verify(problems[1].to_dict(), "The answer is $\\boxed{0.75}$.").correct
    assert not verifiers.verify(problems[1].to_dict(), "The answer is $\\boxed{3/5}$.").correct


def test_math500_prefers_its_answer_column_to_the_solution_box(tmp_path):
    row = {**fixtures.math500_rows(1)[0], "answer": "42"}
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n")
    (problem,) = _problems(tmp_path / "m.jsonl", "math")
    assert problem.answer == "42"


@pytest.mark.parametrize("shape, solution", [
    ("mbpp", lambda r: r["code"]),
    ("apps", lambda r: json.loads(r["solutions"])[0]),
    ("humaneval", lambda r: r["prompt"] + r["canonical_solution"]),
])
def test_code_rows_are_judged_by_their_tests(shape, solution, tmp_path):
    rows = fixtures.SHAPES[shape][0](3)
    problems = _problems(fixtures.write(shape, tmp_path, n=3), "code")
    assert {p.task for p in problems} == {"code"} and all(p.tests for p in problems)
    for row, problem in zip(rows, problems):
        right = verifiers.verify(problem.to_dict(), f"```python\n{solution(row)}\n```")
        assert right.correct, right.reason
        wrong = solution(row).replace("+", "-").replace("*", "+")
        assert not verifiers.verify(problem.to_dict(), f"```python\n{wrong}\n```").correct
    if shape == "mbpp":  # the tests name the function, so the prompt shows them (MBPP's own prompt)
        assert "Your code should pass these tests:\nassert add_1(1) == 2" in problems[0].question
    if shape == "apps":
        assert [p.difficulty for p in problems] == [1, 2, 3] and problems[0].tests[0] == {"input": "1 2\n", "output": "3\n"}
    if shape == "humaneval":
        assert problems[0].meta["entry_point"] == "scale_1" and problems[0].question == rows[0]["prompt"]


@pytest.mark.parametrize("answer_from, gold_text, gold", [
    ("field", "3/4", "3/4"), ("####", "6 eggs\n#### 18", "18"), ("boxed", "so $\\boxed{\\frac12}$.", "\\frac12"),
    ("auto", "x\n#### 7", "7"), ("auto", "\\boxed{5}", "5"), ("auto", "$12$", "12"),
])
def test_generic_columns_and_answer_from(answer_from, gold_text, gold, tmp_path):
    path = tmp_path / "own.jsonl"
    path.write_text(json.dumps({"prompt": "q?", "gold": gold_text, "uid": 7}) + "\n")
    (problem,) = _problems(path, "generic", task="math", answer_from=answer_from,
                           columns={"question": "prompt", "answer": "gold", "id": "uid"})
    assert problem.answer == gold and problem.meta == {"source_id": "7"}


def test_a_gold_without_the_marker_its_layout_expects_is_a_bad_row_with_its_reason(tmp_path):
    path = tmp_path / "g.jsonl"
    rows = [{"question": "q1", "answer": "no marker"}, {"question": "q2", "answer": "x\n#### 2"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    bad, good = iter_problems(SourceConfig(kind="file", path=str(path), layout="gsm8k"))
    assert isinstance(bad, BadRow) and "no '####' marker" in bad.reason and bad.where == f"{path}:0"
    assert good.answer == "2"
    generic = list(iter_problems(SourceConfig(kind="file", path=str(path), task="math", answer_from="####")))
    assert isinstance(generic[0], BadRow) and "answer_from='####' finds none" in generic[0].reason


def test_code_tests_that_cannot_run_are_refused_up_front(tmp_path):
    path = tmp_path / "c.jsonl"
    rows = [{"text": "f", "test_list": ["x = 1"]}, {"question": "g", "input_output": json.dumps({"fn_name": "g", "inputs": [], "outputs": []})},
            {"prompt": "h", "test": "assert h(("}, {"question": "k", "tests": [{"input": "1", "output": 2}]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reasons = [i.reason for i in iter_problems(SourceConfig(kind="file", path=str(path), layout="code"))]
    assert reasons == ["tests: ValueError: the tests contain no assert",
                       "tests: call-based tests (fn_name) are not supported; give stdin/stdout cases or asserts",
                       "tests: SyntaxError: '(' was never closed (<unknown>, line 1)",
                       "tests: case 0 needs string input and output"]
