"""Dedup (exact after normalisation, near by MinHash, across rounds) and n-gram decontamination
against benchmark files in the shapes users have: JSONL, JSON, Parquet, a save_to_disk folder."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selfplay.hygiene import DecontamConfig, Decontaminator, DedupConfig, Deduper, earlier_rounds
from selfplay.shards import RoundWriter

RIGHT = "<think>\n7+8+0=15\n5+6+1=12\n4+0+1=5\n</think>\nAnswer: 525"
WRONG = "<think>\n7+8+0=15\n5+6+1=13\n4+0+1=5\n</think>\nAnswer: 535"


def test_exact_duplicates_after_normalisation_and_near_duplicates_of_the_same_verdict():
    near = RIGHT.replace("Answer: 525", "Answer:  525 ")  # whitespace only: exact after normalising
    longer = RIGHT + "."  # a character more: near
    traces = [(RIGHT, True), (near, True), (WRONG, False), (longer, True), ("something else entirely", False)]
    found = Deduper(DedupConfig()).duplicates("p1", traces)
    assert set(found) == {1, 3}
    assert found[1].startswith("duplicate (exact)") and "trace 0" in found[1]
    assert found[3].startswith("duplicate (near)") and "trace 0" in found[3]
    # A wrong trace one digit from a right one is the best pair there is: never its duplicate.
    assert 2 not in found
    assert Deduper(DedupConfig(near=False)).duplicates("p1", traces).keys() == {1}
    assert Deduper(DedupConfig(exact=False, near=False)).duplicates("p1", traces) == {}


def test_one_deduper_over_many_problems_decides_as_a_fresh_one_per_problem():
    # The round keeps one Deduper for all its problems (its LSH split and MinHash permutations are
    # computed once): each problem's decisions must not depend on the problems judged before it.
    variants = [RIGHT, RIGHT + ".", RIGHT + "..", WRONG, WRONG.replace("535", "536"), "short", RIGHT[:30]]
    problems = [[(variants[(i + j) % len(variants)], (i + j) % len(variants) < 3) for j in range(i % 5 + 2)]
                for i in range(12)]
    shared = Deduper(DedupConfig(exact=False))
    for i, traces in enumerate(problems):
        assert shared.duplicates(f"p{i}", traces) == Deduper(DedupConfig(exact=False)).duplicates(f"p{i}", traces)


def test_exact_dedup_reaches_across_the_rounds_of_a_run(tmp_path):
    from selfplay import records

    row = {name: None for name in records.TRACE_SCHEMA.names}
    row.update(id="t1", problem_id="p1", messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": RIGHT}])
    with RoundWriter(str(tmp_path / "round-0"), {"sft": records.TRACE_SCHEMA, "problems": records.PROBLEM_STATS_SCHEMA}) as w:
        w.add("p1", {"sft": [row], "problems": [{"problem_id": "p1"}]})
    rounds = earlier_rounds(str(tmp_path), 2)
    assert rounds == [f"{tmp_path}/round-0"]  # round-1 has no manifest
    found = Deduper(DedupConfig(), rounds).duplicates("p1", [(RIGHT + "\n", True), (WRONG, False)])
    assert found == {0: "duplicate (exact): the same normalised trace is in round 0"}
    assert Deduper(DedupConfig(), rounds).duplicates("p2", [(RIGHT, True)]) == {}  # another problem
    assert Deduper(DedupConfig(across_rounds=False), rounds).duplicates("p1", [(RIGHT, True)]) == {}


GSM = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
       "How many clips did Natalia sell altogether in April and May?")


def _benchmarks(tmp_path):
    import datasets

    (tmp_path / "gsm8k.jsonl").write_text(json.dumps({"question": GSM, "answer": "#### 72"}) + "\n")
    (tmp_path / "list.json").write_text(json.dumps([{"problem": "Compute the sum of the first ten odd numbers please now ok"}]))
    pq.write_table(pa.table({"problem": ["What is the remainder when 2 to the power 100 is divided by seven exactly"]}),
                   tmp_path / "math.parquet")
    datasets.Dataset.from_dict({"question": ["How many ways can five distinct books be placed on a shelf of two rows"]}) \
        .save_to_disk(str(tmp_path / "saved"))
    return [str(tmp_path / n) for n in ("gsm8k.jsonl", "list.json", "math.parquet", "saved")]


def test_a_problem_sharing_an_ngram_with_any_benchmark_is_caught_and_clean_ones_pass(tmp_path):
    paths = _benchmarks(tmp_path)
    d = Decontaminator(DecontamConfig(benchmarks=paths, ngram=8))
    hit = d.check("Q: natalia sold CLIPS to 48 of her friends in April; then what?")
    assert hit == {"benchmark": paths[0], "ngram": "natalia sold clips to 48 of her friends"}
    assert d.check("Tell me: what is the remainder when 2 to the power 100 is divided by 7?")["benchmark"] == paths[2]
    assert d.check("Compute the sum of the first ten odd numbers please")["benchmark"] == paths[1]
    assert d.check("so how many ways can five distinct books be placed on a shelf")["benchmark"] == paths[3]
    assert d.check("Natalia sold clips to 47 of her friends in June.") is None  # 7 words in a row at most
    assert Decontaminator(DecontamConfig(benchmarks=paths, ngram=13)).check("natalia sold clips to 48 of her friends") is None


def test_a_benchmark_that_is_not_there_fails_at_start(tmp_path):
    with pytest.raises(ValueError, match="decontam.benchmarks: .*missing.jsonl does not exist"):
        Decontaminator(DecontamConfig(benchmarks=[str(tmp_path / "missing.jsonl")]))
    (tmp_path / "b.csv").write_text("x")
    with pytest.raises(ValueError, match="not .jsonl, .json or .parquet"):
        Decontaminator(DecontamConfig(benchmarks=[str(tmp_path / "b.csv")]))
