"""Pairs and PRM rows: the pairing and labelling rules on real verifier verdicts, a real round that
writes every product with its card, and the proof that trainers take them: `datasets` loads the
round dir's configs and TRL's SFT and DPO trainers (and a token-classification PRM on the
stepwise rows, TRL 1.16 having dropped its PRMTrainer) run a few steps on the tiny model."""

from __future__ import annotations

import asyncio
import json

import datasets
import pytest

import verifiers
from selfplay.actors import ModelConfig
from selfplay.engines.config import EngineConfig
from selfplay.hygiene import DecontamConfig, DedupConfig, Deduper
from selfplay.pipeline import ClusterConfig, OutputConfig, RoundConfig, VerifierConfig, outcome_rows, run_round
from selfplay.problems import SourceConfig, TaskSpec, iter_problems
from selfplay.products import PairsConfig, PrmConfig, prm_rows
from selfplay.records import Problem
from selfplay.shards import load_rows, read_manifest
from selfplay.strategies import Attempt, Outcome, SamplingConfig, StrategyConfig

PROBLEM = Problem(source="t", task="addition", question="457+68=?", answer="525", meta={"operands": [457, 68]})
RIGHT = "<think>\n7+8+0=15\n5+6+1=12\n4+0+1=5\n</think>\nAnswer: 525"
WRONG_STEP = "<think>\n7+8+0=15\n5+6+1=13\n4+0+1=5\n</think>\nAnswer: 535"
WRONG_ANSWER = "<think>\n7+8+0=15\n5+6+1=12\n4+0+1=5\n</think>\nAnswer: 526"
OTHER = "<think>\nColumn by column:\n7+8+0=15\n5+6+1=12\n4+0+1=5\n</think>\nAnswer: 525"
SOURCE = SourceConfig(kind="tasks", tasks=[TaskSpec("addition", 8, 1)])


def _attempt(text: str, finish: str = "stop") -> Attempt:
    a = Attempt(text, 20, finish, seed=1, revision=0)
    a.verdict = verifiers.verify(PROBLEM.to_dict(), text) if finish == "stop" else verifiers.Verdict(False, "truncated")
    a.accepted = a.verdict.correct
    a.reject_reason = "" if a.accepted else f"verifier: {a.verdict.reason}"
    return a


def _rows(texts, k=2, per_problem=2, **finish):
    attempts = [_attempt(t, finish.get(f"t{i}", "stop")) for i, t in enumerate(texts)]
    cfg = RoundConfig(solver=ModelConfig(EngineConfig(model="m")), source=SOURCE, strategy=StrategyConfig(k=k),
                      pairs=PairsConfig(per_problem=per_problem))
    outcome = Outcome(PROBLEM, attempts, "solved", samples=len(attempts), verified=sum(a.accepted for a in attempts))
    return outcome_rows(outcome, cfg, {"solver": {}, "critic": {}}, Deduper(DedupConfig()))


def test_pairs_take_kept_traces_against_verifier_rejections_non_truncated_first():
    rows = _rows([WRONG_STEP, RIGHT, RIGHT + "\n", WRONG_STEP[:30], WRONG_ANSWER, OTHER, RIGHT + ".."], t3="length")
    sft, rejected = rows["sft"], rows["rejected"]
    # The whitespace twin is a duplicate; the near twin too, so OTHER is the second kept trace.
    assert [r["messages"][-1]["content"] for r in sft] == [RIGHT, OTHER]
    reasons = {r["messages"][-1]["content"]: r["reject_reason"] for r in rejected}
    assert reasons[RIGHT + "\n"].startswith("duplicate (exact)") and reasons[RIGHT + ".."].startswith("duplicate (near)")
    pairs = rows["pairs"]
    # Rejections in preference order: WRONG_STEP, WRONG_ANSWER, then the truncated one; kept
    # trace i starts at i * per_problem, wrapping.
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [
        (RIGHT, WRONG_STEP), (RIGHT, WRONG_ANSWER), (OTHER, WRONG_STEP), (OTHER, WRONG_STEP[:30])]
    by_id = {r["id"]: r for r in sft + rejected}
    for p in pairs:  # TRL's conversational preference format, traced back to both rows
        assert p["prompt"] == [{"role": "user", "content": "457+68=?"}]
        assert p["chosen"] == by_id[p["chosen_id"]]["messages"][-1:] and p["rejected"] == by_id[p["rejected_id"]]["messages"][-1:]
        assert p["rejected_reason"] == by_id[p["rejected_id"]]["reject_reason"] and p["rejected_reason"].startswith("verifier:")
    assert len({p["id"] for p in pairs}) == len(pairs)
    assert [p["rejected_finish_reason"] for p in pairs].count("length") == 1
    assert _rows([RIGHT, WRONG_STEP], per_problem=1)["pairs"][0]["rejected"][0]["content"] == WRONG_STEP
    assert _rows([WRONG_STEP, WRONG_ANSWER])["pairs"] == []  # nothing kept, no pair
    assert _rows([RIGHT])["pairs"] == []  # nothing rejected, no pair


def test_exact_step_labels_true_up_to_the_first_wrong_step_which_is_false_and_the_rest_dropped():
    rows = _rows([RIGHT, WRONG_STEP, WRONG_ANSWER, "<think>\n7+8+0=15\n</think>\nAnswer: 5"])
    by_trace = {r["trace_id"]: r for r in asyncio.run(prm_rows(PROBLEM, rows["sft"] + rows["rejected"], PrmConfig(), None))}
    text = {r["id"]: r["messages"][-1]["content"] for r in rows["sft"] + rows["rejected"]}
    got = {text[t]: (r["completions"], r["labels"]) for t, r in by_trace.items()}
    assert got[RIGHT] == (["7+8+0=15", "5+6+1=12", "4+0+1=5", "Answer: 525"], [True] * 4)
    assert got[WRONG_STEP] == (["7+8+0=15", "5+6+1=13"], [True, False])
    assert got[WRONG_ANSWER] == (["7+8+0=15", "5+6+1=12", "4+0+1=5", "Answer: 526"], [True, True, True, False])
    # A missing column: the blame falls on the step after the last step line (the early answer).
    assert got["<think>\n7+8+0=15\n</think>\nAnswer: 5"] == (["7+8+0=15", "Answer: 5"], [True, False])
    for r in by_trace.values():  # TRL's stepwise format
        assert isinstance(r["prompt"], str) and len(r["completions"]) == len(r["labels"]) == len(r["soft_labels"])
        assert r["label_source"] == "step_checker" and r["rollout_tokens"] == 0
    assert asyncio.run(prm_rows(PROBLEM, rows["sft"], PrmConfig(enabled=False), None)) == []


def test_monte_carlo_labels_count_rollouts_that_reach_a_verified_answer_and_stop_at_the_first_hopeless_step():
    math = Problem(source="t", task="math", question="What is 2+3, then times 4?", answer="20")
    trace = {"id": "t1", "problem_id": math.id, "task": "math", "question": math.question, "round": 0, "config_hash": "h",
             "reject_reason": "verifier: wrong", "verdict": {"correct": False},
             "messages": [{"role": "assistant", "content": "1. 2+3 = 5\n2. 5*4 = 21\n3. So 21"}]}
    calls = []

    async def rollout_double(problem, prefix, n, seed):  # a test double: the rollouts' results, scripted
        calls.append(prefix)
        return {1: (n, 10), 2: (1, 10)}.get(len(calls), (0, 10))

    (row,) = asyncio.run(prm_rows(math, [trace], PrmConfig(rollouts=4), rollout_double))
    assert calls == ["1. 2+3 = 5\n", "1. 2+3 = 5\n2. 5*4 = 21\n"]
    # The last step is the whole trace: its own verdict labels it, with no rollout.
    assert row["completions"] == ["1. 2+3 = 5", "2. 5*4 = 21", "3. So 21"]
    assert row["labels"] == [True, True, False] and row["soft_labels"] == [1.0, 0.25, 0.0]
    assert row["label_source"] == "monte_carlo" and row["rollouts"] == 4 and row["rollout_tokens"] == 20
    calls.clear()

    async def hopeless_double(problem, prefix, n, seed):  # a test double: no rollout ever succeeds
        calls.append(prefix)
        return 0, 5

    (row,) = asyncio.run(prm_rows(math, [trace], PrmConfig(rollouts=2), hopeless_double))
    assert row["labels"] == [False] and row["soft_labels"] == [0.0] and len(calls) == 1
    assert asyncio.run(prm_rows(math, [trace], PrmConfig(rollouts=0), hopeless_double)) == []  # off by default


# ---- a real round -----------------------------------------------------------------------------


def _config(model_dir, out_dir, source, round_=0, **kw) -> RoundConfig:
    return RoundConfig(
        solver=ModelConfig(EngineConfig(model=str(model_dir), engine="hf"), num_cpus=0.5), round=round_, source=source,
        strategy=StrategyConfig(k=2, wave=2, max_samples=4, revisions=1, unsolvable_after=4,
                                sampling=SamplingConfig(max_tokens=40, critic_max_tokens=8)),
        verifier=VerifierConfig(workers=1), output=OutputConfig(out_dir=str(out_dir)),
        cluster=ClusterConfig(max_in_flight=4), progress_every_s=0, **kw)



@pytest.fixture(scope="module")
def round_dir(ray_cluster, solver_model_dir, tmp_path_factory):
    """Round 0 of 8 one-digit additions on the test model; one problem is in a benchmark file."""
    tmp = tmp_path_factory.mktemp("products")
    first = next(iter_problems(SOURCE))
    (tmp / "bench.jsonl").write_text(json.dumps({"question": first.question, "answer": first.answer}) + "\n")
    cfg = _config(solver_model_dir, tmp / "out", SOURCE, decontam=DecontamConfig(benchmarks=[str(tmp / "bench.jsonl")]))
    stats = run_round(cfg)
    return cfg, stats, first


def test_a_round_writes_every_product_with_its_counts_and_a_card_datasets_loads(round_dir):
    cfg, stats, contaminated = round_dir
    rd = cfg.round_dir
    manifest = read_manifest(rd)
    assert {"sft", "rejected", "critic", "pairs", "prm", "problems"} <= set(manifest["kinds"])
    assert all(len(s["sha256"]) == 64 for s in manifest["shards"])
    problems = load_rows(rd, "problems").to_pylist()
    assert len(problems) == 7 and contaminated.id not in {p["problem_id"] for p in problems}
    dropped = [json.loads(line) for line in open(f"{rd}/decontaminated.jsonl")]
    assert [d["problem_id"] for d in dropped] == [contaminated.id] and dropped[0]["benchmark"].endswith("bench.jsonl")
    assert stats["decontamination"]["dropped"] == 1

    sft, rejected = load_rows(rd, "sft").to_pylist(), load_rows(rd, "rejected").to_pylist()
    pairs, prm = load_rows(rd, "pairs").to_pylist(), load_rows(rd, "prm").to_pylist()
    assert sft and rejected and pairs and prm
    assert stats["pairs"] == len(pairs) and stats["prm"]["rows"] == len(prm)
    assert stats["dedup"]["exact"] + stats["dedup"]["near"] == sum(r["reject_reason"].startswith("duplicate") for r in rejected)
    sft_ids, losers = {r["id"] for r in sft}, {r["id"]: r for r in rejected}
    assert all(p["chosen_id"] in sft_ids and not losers[p["rejected_id"]]["verdict"]["correct"] for p in pairs)
    traces = {r["id"]: r for r in sft + rejected}
    for r in prm:
        steps = r["completions"]
        assert r["labels"] == [True] * (len(steps) - 1) + [r["labels"][-1]]
        assert r["labels"][-1] or not traces[r["trace_id"]]["verdict"]["correct"]

    card = open(f"{rd}/README.md").read()
    assert card.startswith("---\n") and "config_name: pairs" in card and manifest["meta"]["config_hash"] in card
    assert f"| kept rate (kept / attempts) | {stats['kept_rate']:.3f} |" in card and "Decontamination dropped 1 problems" in card
    assert f"| pass@{stats['wave']} (one wave) |" in card and f"of {stats['critic']['examples']} judged" in card
    for kind, rows in (("sft", sft), ("pairs", pairs), ("prm", prm)):
        assert datasets.load_dataset(rd, kind, split="train").num_rows == len(rows)
    assert datasets.load_dataset(rd, split="train").num_rows == len(sft)  # sft is the default config


def test_trainers_take_the_shards_sft_dpo_and_stepwise_prm(round_dir, solver_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer, Trainer, TrainingArguments
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    rd = round_dir[0].round_dir
    tok = AutoTokenizer.from_pretrained(solver_model_dir)
    common = dict(max_steps=2, per_device_train_batch_size=2, report_to=[], use_cpu=True, save_strategy="no",
                  logging_steps=1, learning_rate=1e-4)

    sft = datasets.load_dataset(rd, "sft", split="train")
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(solver_model_dir), processing_class=tok,
                         args=SFTConfig(output_dir=str(tmp_path / "sft"), max_length=256, **common),
                         train_dataset=sft.select_columns(["messages"]))
    assert trainer.train().global_step == 2

    pairs = datasets.load_dataset(rd, "pairs", split="train")
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(solver_model_dir), processing_class=tok,
                         args=DPOConfig(output_dir=str(tmp_path / "dpo"), max_length=256, **common),
                         train_dataset=pairs.select_columns(["prompt", "chosen", "rejected"]))
    result = trainer.train()
    assert result.global_step == 2 and torch.isfinite(torch.tensor(result.training_loss))

    # TRL's stepwise-supervision format, tokenised as its PRM trainer did: prompt, then each step
    # followed by the separator, the step's label on the separator's token and -100 elsewhere.
    prm = datasets.load_dataset(rd, "prm", split="train")
    assert prm.features["completions"].feature.dtype == "string" and prm.features["labels"].feature.dtype == "bool"

    def stepwise(row):
        assert isinstance(row["prompt"], str) and len(row["completions"]) == len(row["labels"]) > 0
        ids, labels = tok(row["prompt"] + "\n")["input_ids"], None
        labels = [-100] * len(ids)
        for step, label in zip(row["completions"], row["labels"]):
            step_ids = tok(step + "\n")["input_ids"]
            ids, labels = ids + step_ids, labels + [-100] * (len(step_ids) - 1) + [int(label)]
        return {"input_ids": ids[:256], "labels": labels[:256]}

    features = prm.map(stepwise, remove_columns=prm.column_names)
    model = AutoModelForTokenClassification.from_pretrained(solver_model_dir, num_labels=2)
    model.config.pad_token_id = tok.pad_token_id
    from transformers import DataCollatorForTokenClassification

    trainer = Trainer(model=model, args=TrainingArguments(output_dir=str(tmp_path / "prm"), **common),
                      train_dataset=features, data_collator=DataCollatorForTokenClassification(tok))
    assert trainer.train().global_step == 2


@pytest.mark.slow
def test_the_next_round_on_the_same_problems_drops_traces_an_earlier_round_has(round_dir, solver_model_dir):
    cfg, _, _ = round_dir
    again = _config(solver_model_dir, cfg.output.out_dir, SOURCE, round_=1)
    stats = run_round(again)
    rejected = load_rows(again.round_dir, "rejected").to_pylist()
    across = [r for r in rejected if r["reject_reason"] == "duplicate (exact): the same normalised trace is in round 0"]
    assert across and stats["dedup"]["exact"] >= len(across)
    earlier = {(r["problem_id"], r["messages"][-1]["content"]) for kind in ("sft", "rejected")
               for r in load_rows(cfg.round_dir, kind).to_pylist()}
    assert not {(r["problem_id"], r["messages"][-1]["content"]) for r in load_rows(again.round_dir, "sft").to_pylist()} & earlier
    assert not {r["rejected_id"] for r in load_rows(again.round_dir, "pairs").to_pylist()} & {r["id"] for r in across}


@pytest.mark.slow
def test_monte_carlo_prm_labels_through_the_real_engine_and_verifier(ray_cluster, solver_model_dir, tmp_path):
    path = tmp_path / "math.jsonl"
    path.write_text("".join(json.dumps({"question": f"{a}+{b}=?", "answer": str(a + b)}) + "\n" for a, b in ((1, 2), (3, 4))))
    cfg = _config(solver_model_dir, tmp_path / "out", SourceConfig(kind="file", path=str(path), task="math"),
                  prm=PrmConfig(rollouts=2, max_traces=2, max_tokens=40))
    stats = run_round(cfg)
    prm = load_rows(cfg.round_dir, "prm").to_pylist()
    assert prm and {r["label_source"] for r in prm} == {"monte_carlo"}
    assert all(r["rollouts"] == 2 and len(r["labels"]) == len(r["completions"]) for r in prm)
    assert stats["prm"]["rollout_tokens"] == sum(r["rollout_tokens"] for r in prm) > 0
