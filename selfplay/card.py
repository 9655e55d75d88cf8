"""The dataset card: README.md in each round dir, what a user reads first and what `datasets` reads.

Its YAML header is a Hugging Face dataset card with one config per shard kind, `data_files` naming
exactly the manifest's shards (never a glob, which could pick up a killed run's leftovers), so

    datasets.load_dataset("<round dir>")            # sft, the default config
    datasets.load_dataset("<round dir>", "pairs")   # any other kind by name

loads them. The body says what the round made and at what cost: yield, kept rate, pass@k,
critic agreement with the verifier, token and length distributions, tokens and seconds per kept
trace, what dedup and decontamination removed, and the command and config hash that made it.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

from selfplay.shards import load_rows, read_manifest
from selfplay.storage import write_file

CARD = "README.md"
KINDS = ("sft", "pairs", "prm", "rejected", "critic", "problems")
_ABOUT = {
    "sft": "accepted traces; `messages` for SFT trainers",
    "pairs": "preference pairs (`prompt`, `chosen`, `rejected`) for DPO",
    "prm": "process supervision (`prompt`, `completions`, `labels`) for PRM training",
    "rejected": "the other traces, with `reject_reason`",
    "critic": "the critic's judgements beside the verifier's label; `messages` trains a critic",
    "problems": "one row per finished problem",
}


def write_card(round_dir: str, stats: dict[str, Any], command: list[str] | None = None) -> str:
    """Write <round_dir>/README.md atomically; returns its text."""
    manifest = read_manifest(round_dir)
    meta = manifest.get("meta") or {}
    text = _header(manifest) + _body(round_dir, manifest, meta, stats, command if command is not None else _command())
    write_file(f"{round_dir}/{CARD}", text.encode())
    return text


def _command() -> list[str]:
    argv = list(sys.argv)
    if argv and argv[0].replace("\\", "/").endswith("selfplay/generate.py"):
        return ["python", "-m", "selfplay.generate", *argv[1:]]
    return ["python", *argv]


def _header(manifest: dict[str, Any]) -> str:
    lines = ["---", "pretty_name: selfplay round", "tags: [synthetic, reasoning, verified, selfplay]",
             "task_categories: [text-generation]", "configs:"]
    for kind in KINDS:
        paths = [s["path"] for s in manifest["shards"] if s["kind"] == kind]
        if not paths:
            continue
        lines += [f"- config_name: {kind}", *(["  default: true"] if kind == "sft" else []),
                  "  data_files:", "  - split: train", "    path:", *(f"    - {p}" for p in paths)]
    return "\n".join(lines) + "\n---\n\n"


def _body(round_dir: str, manifest: dict[str, Any], meta: dict[str, Any], stats: dict[str, Any], command: list[str]) -> str:
    config = meta.get("config") or {}
    accepted = stats.get("accepted", 0)
    critic = stats.get("critic") or {}
    totals = manifest.get("kinds") or {}
    out = [f"# selfplay round {config.get('round', '?')}", "",
           "Verified reasoning traces made by self-play: a solver samples traces, verifiers establish ground "
           "truth, a critic judges them; only verified traces are kept.", "",
           "| config | rows | what |", "|---|---|---|"]
    out += [f"| `{kind}` | {totals.get(kind, {}).get('rows', 0)} | {_ABOUT[kind]} |" for kind in KINDS]
    out += ["", "## Yield", "", "| | |", "|---|---|",
            f"| problems | {stats.get('problems', 0)} (solved {stats.get('solved_problems', 0)}) |",
            f"| samples (+revisions) | {stats.get('samples', 0)} (+{stats.get('revisions', 0)}) |",
            f"| kept traces | {accepted} ({_f(accepted / stats['problems']) if stats.get('problems') else '-'} per problem) |",
            f"| kept rate (kept / attempts) | {_f(stats.get('kept_rate'))} |", f"| pass@1 | {_f(stats.get('pass_at_1'))} |",
            *([f"| pass@{stats['wave']} (one wave) | {_f(stats.get('pass_at_wave'))} |"] if "wave" in stats else []),
            f"| critic agreement with the verifier (accuracy) | {_f(critic.get('accuracy'))} of {critic.get('examples', 0)} judged |",
            f"| critic precision / recall (calls of wrong) | {_f(critic.get('wrong_precision'))} / {_f(critic.get('wrong_recall'))} |",
            f"| generated tokens | {stats.get('tokens', 0)} |",
            f"| tokens per kept trace | {_f(stats['tokens'] / accepted, 1) if accepted else '-'} |",
            f"| seconds per kept trace (last run) | {_f(stats['seconds'] / accepted, 3) if accepted and stats.get('seconds') else '-'} |",
            f"| preference pairs | {stats.get('pairs', 0)} |",
            f"| PRM rows (steps, share labelled true) | {(stats.get('prm') or {}).get('rows', 0)} "
            f"({(stats.get('prm') or {}).get('steps', 0)}, {_f((stats.get('prm') or {}).get('true_share'))}) |",
            f"| PRM Monte-Carlo rollout tokens | {(stats.get('prm') or {}).get('rollout_tokens', 0)} |",
            "", "## Lengths", "", "| traces | n | tokens min / median / p90 / max | steps median / max |", "|---|---|---|---|"]
    out += [_lengths(round_dir, kind) for kind in ("sft", "rejected")]
    dedup, decontam = stats.get("dedup") or {}, stats.get("decontamination") or {}
    out += ["", "## Hygiene", "",
            f"- Dedup removed {dedup.get('exact', 0)} exact (normalised, within and across rounds) and "
            f"{dedup.get('near', 0)} near-duplicate traces (MinHash, Jaccard >= {dedup.get('threshold', '-')}); "
            "they stay in `rejected/` with reason `duplicate ...` and enter no training product.",
            f"- Decontamination dropped {decontam.get('dropped', 0)} problems sharing a {decontam.get('ngram', '-')}-gram "
            f"with {', '.join(f'`{b}`' for b in decontam.get('benchmarks', [])) or 'no benchmark (none configured)'}"
            + ("; they are listed in `decontaminated.jsonl`." if decontam.get("dropped") else "."),
            "", "## Provenance", "",
            f"- command: `{shlex.join(command)}`", f"- config hash: `{meta.get('config_hash', '-')}`",
            f"- solver: `{((meta.get('models') or {}).get('solver') or {}).get('model_id', '-')}` "
            f"(revision `{((meta.get('models') or {}).get('solver') or {}).get('model_revision', '-')}`)",
            f"- verifiers: {', '.join(f'{t} {v}' for t, v in sorted((meta.get('verifiers') or {}).items())) or '-'}",
            "- every shard, its rows and sha256 are in `manifest.json`; the numbers above are in `stats.json`.",
            "", "## Training with TRL", "", "```python", "from datasets import load_dataset",
            f"sft = load_dataset({round_dir!r}, \"sft\", split=\"train\")        # SFTTrainer(train_dataset=sft)",
            f"pairs = load_dataset({round_dir!r}, \"pairs\", split=\"train\")    # DPOTrainer(train_dataset=pairs)",
            f"prm = load_dataset({round_dir!r}, \"prm\", split=\"train\")        # stepwise supervision: a PRM trainer",
            "```", ""]
    return "\n".join(out)


def _lengths(round_dir: str, kind: str) -> str:
    from selfplay.steps_split import step_spans

    rows = load_rows(round_dir, kind, ["tokens", "messages"]).to_pylist()
    if not rows:
        return f"| {kind} | 0 | - | - |"
    tokens = sorted(r["tokens"] for r in rows)
    steps = sorted(len(step_spans(r["messages"][-1]["content"])) for r in rows)
    return (f"| {kind} | {len(rows)} | {tokens[0]} / {_q(tokens, 0.5)} / {_q(tokens, 0.9)} / {tokens[-1]} | "
            f"{_q(steps, 0.5)} / {steps[-1]} |")


def _q(values: list[int], q: float) -> int:
    return values[min(int(q * len(values)), len(values) - 1)]


def _f(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"

