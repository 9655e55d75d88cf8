"""Held-out evaluation: pass@1 / pass@k per cell, the critic against the verifier, eval.json; and
selfplay.scoring, which every report (eval.json, bootstrap.json, stats.json) takes its numbers from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from selfplay.engines.base import Completion, GenerationResult
from selfplay.evaluate import EvaluateConfig, TestTimeConfig, evaluate, evaluate_engine, greedy_cells, heldout_cells
from selfplay.prompts import CRITIC_PREFIX, format_critic
from selfplay.scoring import (CriticCall, auc, best_threshold, critic_metrics, pass_at_k, same_answer, solver_cell,
                              summary_table)
from selfplay.tasks import is_heldout, make_problems, reference_solution

ROOT = Path(__file__).parents[2]


class ScriptedEngineDouble:
    """Test double for an engine: solves with the reference trace for questions in `solved`, a wrong
    answer otherwise, and judges every trace "correct". The scoring code around it is under test."""

    model_id, model_revision = "double", "0"

    def __init__(self, cells, solved_share: float):
        problems = [p for c in cells for p in c.problems]
        self.solved = {p.question: reference_solution(p).trace() for p in problems[: int(len(problems) * solved_share)]}

    def generate(self, requests):
        out = []
        for r in requests:
            text = r.prompt[-1]["content"]
            if text.startswith(CRITIC_PREFIX):
                answers = [format_critic(True)]
            else:
                answers = [self.solved.get(text, "<think>\n</think>\nAnswer: -1")] * r.n
            out.append(GenerationResult(1, [Completion(a, 3, "stop") for a in answers]))
        return out

    def close(self):
        pass


def _config(**kw) -> EvaluateConfig:
    return EvaluateConfig(**({"model": "unused", "bands": {"hard": {"addition": [4, 5]}}, "problems": 10,
                              "samples": 3, "k": 2, "critic_examples": 20} | kw))


def test_pass_at_k_is_the_unbiased_estimate():
    assert pass_at_k(4, 0, 2) == 0.0
    assert pass_at_k(4, 4, 1) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k(4, 3, 2) == 1.0                 # any 2 of 4 include a correct one
    assert pass_at_k(3, 1, 1) == 1 / 3               # exactly c / n


def test_pass_at_k_refuses_fewer_samples_than_k():
    # Two wrong samples say nothing about four draws: Chen's formula alone answered 1.0 here.
    with pytest.raises(ValueError, match="undefined with only 2 samples"):
        pass_at_k(2, 0, 4)


def test_the_answer_matches_the_gold_up_to_whitespace_and_case():
    # The one definition behind "exact" in eval.json and bootstrap.json (eval.json's
    # answer_correct used to be case-sensitive while bootstrap.json's exact was not).
    assert same_answer("<think>\n</think>\nAnswer: YES", "yes")
    assert same_answer("Answer:  12 ", "12") and not same_answer("Answer: 13", "12")
    assert not same_answer("no final answer here", "12")
    problems = make_problems("addition", 2, 0, 2, "heldout")
    texts = [f"Answer: {problems[0].answer}", "Answer: -1"]
    assert solver_cell(problems, texts, verify=False)[0] == {"problems": 2, "exact": 0.5}


def test_critic_metrics_have_one_definition_and_no_made_up_zeroes():
    calls = [CriticCall(False, 2, False, 2), CriticCall(False, 1, False, 2), CriticCall(True, None, False, 3),
             CriticCall(False, 1, True, None), CriticCall(True, None, True, None), CriticCall(None, None, True, None)]
    assert critic_metrics(calls) == {
        "examples": 6, "wrong_share": 0.5, "accuracy": 0.5, "wrong_precision": 0.6667, "wrong_recall": 0.6667,
        "first_wrong_step_accuracy": 0.3333, "unparsed": 1, "auc": None, "best_threshold": None,
        "best_threshold_accuracy": None}
    # A critic that never calls a trace wrong has no precision (bootstrap.json used to say 0.0).
    blind = critic_metrics([CriticCall(True, None, False, 1), CriticCall(None, None, True, None)])
    assert blind["wrong_precision"] is None
    assert blind["first_wrong_step_accuracy"] == 0.0  # the wrong trace it called correct: its step missed
    assert blind["wrong_recall"] == 0.0 and blind["accuracy"] == 0.0
    assert critic_metrics([])["accuracy"] is None


def test_auc_ranks_correct_traces_above_wrong_ones_and_counts_ties_as_half():
    assert auc([0.9, 0.8, 0.3, 0.1], [True, True, False, False]) == 1.0
    assert auc([0.1, 0.3, 0.8, 0.9], [True, True, False, False]) == 0.0
    assert auc([0.5, 0.5, 0.5, 0.5], [True, False, True, False]) == 0.5  # a constant score ranks nothing
    # One positive (0.6) against negatives 0.2, 0.6, 0.9: above one, tied with one, below one.
    assert auc([0.6, 0.2, 0.6, 0.9], [True, False, False, False]) == 0.5
    assert auc([0.7, 0.4, 0.4, 0.1], [True, True, False, False]) == 0.875  # (1 + 1 + 1 + 0.5) / 4
    assert auc([0.9, 0.1], [True, True]) is None and auc([], []) is None  # one class: no ranking


def test_the_best_threshold_is_the_one_a_perfect_cut_would_choose():
    assert best_threshold([0.9, 0.7, 0.4, 0.1], [True, True, False, False]) == (0.7, 1.0)
    assert best_threshold([0.9, 0.7], [False, False]) == (None, 1.0)  # call everything wrong
    assert best_threshold([0.9, 0.9, 0.1], [True, False, True]) == (0.1, 0.6667)
    assert best_threshold([], []) == (None, None)
    # Scores from a critic that ranks but whose own calls are all "wrong": accuracy 0.5, AUC 1.0.
    calls = [CriticCall(False, 0, ok, None if ok else 0, score) for ok, score in
             ((True, 0.4), (True, 0.3), (False, 0.2), (False, 0.1))]
    m = critic_metrics(calls)
    assert (m["accuracy"], m["auc"], m["best_threshold_accuracy"], m["first_wrong_step_accuracy"]) == (0.5, 1.0, 1.0, 1.0)


def test_one_summary_table_for_every_report():
    cells = {"hard": {"addition": {"4": {"problems": 3, "pass@1": 0.5, "exact": 0.5, "pass@2": 0.75}}}}
    table = summary_table(cells, {"examples": 4, "accuracy": 0.5, "wrong_precision": None}, k=2,
                          answer_only={"hard": {"addition": {"4": {"problems": 3, "exact": 0.25}}}})
    assert "| band | task | difficulty | problems | pass@1 | pass@2 | exact | answer-only exact |" in table
    assert "| hard | addition | 4 | 3 | 0.5 | 0.75 | 0.5 | 0.25 |" in table
    assert "| 4 | - | 0.5 | - | - | - | - |" in table  # keys it lacks, and None, print as "-"


def test_problems_are_held_out_and_the_same_for_every_checkpoint():
    cells = heldout_cells(_config())
    again = heldout_cells(_config(model="another"))
    assert [p.id for c in cells for p in c.problems] == [p.id for c in again for p in c.problems]
    assert all(is_heldout(p.id) and p.split == "heldout" for c in cells for p in c.problems)
    assert {(c.band, c.difficulty, len(c.problems)) for c in cells} == {("hard", 4, 10), ("hard", 5, 10)}


def test_scores_follow_what_the_model_got_right():
    cfg = _config(test_time=TestTimeConfig(samples=0))
    engine = ScriptedEngineDouble(heldout_cells(cfg), solved_share=0.5)
    report = evaluate_engine(engine, cfg)
    hard = report["bands"]["hard"]
    assert hard["cells"]["addition"]["4"]["pass@1"] == 1.0  # the first half of the problems: all of d=4
    assert hard["cells"]["addition"]["5"]["pass@1"] == 0.0
    assert hard["pass_at_1"] == 0.5 and hard["pass_at_k"] == 0.5
    # The reference model's evaluation (one engine call per cell) scores the same completions alike.
    cells = greedy_cells(engine, cfg.bands, cfg.problems, cfg.seed, cfg.max_tokens)
    assert {d: {k: c[k] for k in ("pass@1", "exact")} for d, c in cells["hard"]["addition"].items()} == \
        {d: {k: c[k] for k in ("pass@1", "exact")} for d, c in hard["cells"]["addition"].items()}
    critic = report["critic"]
    # The double calls everything correct: right on solved traces, blind to every wrong one.
    assert critic["examples"] == 20 and critic["wrong_recall"] == 0.0 and critic["wrong_precision"] is None
    assert critic["accuracy"] == pytest.approx(1 - critic["wrong_share"])


class MixedEngineDouble:
    """Test double for an engine: of every 4 samples of a problem the first is its reference trace
    and the others answer -1, -1, -2; as critic it gives a correct trace P(correct) 0.9 and a wrong
    one 0.3 at the verdict character (all calls "wrong"). The selection code around it is under test."""

    model_id, model_revision = "double", "0"

    def __init__(self, cells):
        self.reference = {p.question: reference_solution(p).trace() for c in cells for p in c.problems}

    def generate(self, requests):
        import math

        out = []
        for r in requests:
            text = r.prompt[-1]["content"]
            if text.startswith(CRITIC_PREFIX):
                right = any(text.endswith(ref.rsplit("\n", 1)[1]) for q, ref in self.reference.items()
                            if text[len(CRITIC_PREFIX):].startswith(q + "\n"))
                verdict = "Verdict: wrong at step 1"
                tokens = [{ch: 0.0} for ch in verdict]
                tokens[9] = {"w": math.log(0.1 if right else 0.7), "c": math.log(0.9 if right else 0.3)}
                out.append(GenerationResult(1, [Completion(verdict, len(verdict), "stop", logprobs=tuple(tokens))]))
            else:
                wrong = ["-1", "-1", "-2"]
                texts = [self.reference[text] if i % 4 == 0 else f"<think>\n</think>\nAnswer: {wrong[i % 4 - 1]}"
                         for i in range(r.n)]
                out.append(GenerationResult(1, [Completion(t, 3, "stop") for t in texts]))
        return out

    def close(self):
        pass


def test_test_time_curves_pick_by_vote_by_critic_and_by_oracle():
    cfg = _config(samples=0, test_time=TestTimeConfig(samples=16, problems=3))
    report = evaluate_engine(MixedEngineDouble(heldout_cells(cfg)), cfg)
    curves = report["test_time"]["hard"]
    assert curves["problems"] == 6 and curves["samples"] == 16 and curves["greedy"] == 1.0
    # Blocks of 2 are [right, -1] (a tie: the first answer wins) and [-1, -2]; from 4 up, -1 wins.
    assert curves["majority"] == {1: 0.25, 2: 0.5, 4: 0.0, 8: 0.0, 16: 0.0}
    # The critic ranks every right trace above every wrong one: best-of-k is right whenever one is drawn.
    assert curves["critic_best"] == {1: 0.25, 2: 0.5, 4: 1.0, 8: 1.0, 16: 1.0}
    # Weighted: 0.9 for the right answer against 0.3 + 0.3 for -1 in a block of 4; 3.6 against 2.4 in 16.
    assert curves["critic_vote"] == {1: 0.25, 2: 0.5, 4: 1.0, 8: 1.0, 16: 1.0}
    assert curves["oracle"][1] == 0.25 and curves["oracle"][2] == 0.45 and curves["oracle"][16] == 1.0
    critic = report["critic"]  # every test-time sample judged: a perfect ranker whose calls are all "wrong"
    assert critic["examples"] == 96 and critic["auc"] == 1.0 and critic["accuracy"] == 0.75
    assert critic["best_threshold_accuracy"] == 1.0
    with pytest.raises(ValueError, match="power of 2"):
        TestTimeConfig(samples=12)


def test_bad_settings_fail_at_start():
    with pytest.raises(ValueError, match="unknown task family 'adition'"):
        _config(bands={"hard": {"adition": [4]}})
    with pytest.raises(ValueError, match="samples .* must be >= k"):
        _config(samples=2, k=4)
    with pytest.raises(ValueError, match="out of range"):
        _config(bands={"hard": {"addition": [0]}})


def test_evaluate_writes_eval_json_for_a_real_model(random_model_dir, tmp_path):
    out = tmp_path / "eval.json"
    cfg = _config(model=str(random_model_dir), out=str(out), problems=2, samples=2, max_tokens=12,
                  critic_examples=3, critic_max_tokens=8, bands={"hard": {"addition": [4]}})
    report = evaluate(cfg)
    saved = json.loads(out.read_text())
    assert saved["bands"] == report["bands"] and saved["model_revision"]
    assert saved["bands"]["hard"]["pass_at_1"] == 0.0  # an untrained model solves nothing
    # The critic judged every test-time sample (2 problems x 16), with the real engine's log-probabilities.
    assert saved["critic"]["examples"] == 32
    curves = saved["test_time"]["hard"]
    assert curves["problems"] == 2 and curves["samples"] == 16 and curves["oracle"]["16"] == 0.0
    assert sorted(curves["majority"]) == ["1", "16", "2", "4", "8"]


def test_command_line_prints_the_table_and_writes_the_report(random_model_dir, tmp_path):
    out = tmp_path / "e.json"
    proc = subprocess.run(
        [sys.executable, "-m", "selfplay.evaluate", f"model={random_model_dir}", f"out={out}", "problems=2",
         "samples=0", "max_tokens=8", "critic_examples=2", "critic_max_tokens=4", "bands={hard: {addition: [2]}}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| hard | addition | 2 | 2 |" in proc.stdout
    assert json.loads(out.read_text())["bands"]["hard"]["cells"]["addition"]["2"]["problems"] == 2


def test_a_band_of_a_dataset_is_the_mean_over_its_problems():
    from selfplay.scoring import band_means

    cells = [{"problems": 1, "pass@1": 1.0}, {"problems": 3, "pass@1": 0.0}]
    assert band_means(cells, None) == {"pass_at_1": 0.5}  # procedural bands: each cell counts the same
    assert band_means(cells, None, per_problem=True) == {"pass_at_1": 0.25}


def test_a_held_out_file_is_scored_by_level_and_its_bad_rows_are_recorded(random_model_dir, tmp_path):
    """MATH-shaped held-out rows with every bad input a file may hold (tests/fixtures/datasets.py):
    each good problem is scored in the cell of its level, and each bad row is skipped with its reason."""
    from selfplay.problems import SourceConfig
    from tests.fixtures import datasets as fixtures

    source = SourceConfig(kind="file", layout="math", path=str(fixtures.write("math", tmp_path, n=6, bad=True)))
    report = evaluate(EvaluateConfig(model=str(random_model_dir), source=source, out=str(tmp_path / "e.json"),
                                     samples=0, max_tokens=8, critic_examples=0))
    hard = report["bands"]["hard"]
    assert list(report["bands"]) == ["hard"] and sorted(hard["cells"]["math"]) == ["1", "2", "3", "4", "5"]
    assert sum(c["problems"] for c in hard["cells"]["math"].values()) == 7  # 6 rows + the long question
    assert hard["pass_at_1"] == 0.0
    reasons = sorted(r["reason"] for r in report["rejected"])
    assert len(reasons) == 4 and reasons[0].startswith("answer: no gold in column 'solution'")
    assert reasons[1].startswith("duplicate problem") and reasons[2].startswith("not UTF-8 text")
    assert reasons[3].startswith("row is 10,48")
