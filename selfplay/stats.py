"""Round statistics (stats.json, the summary table) and the live progress line.

Final statistics are computed from the committed shards, not from counters, so a round that was
killed and resumed reports the same numbers as one that ran straight through.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from math import comb
from typing import Any, Callable

from selfplay.shards import load_rows


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021)."""
    if n == 0:
        return 0.0
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


@dataclass
class RoundStats:
    values: dict[str, Any]

    @classmethod
    def from_round(cls, round_dir: str, k: int) -> "RoundStats":
        problems = load_rows(round_dir, "problems").to_pylist()
        critic = load_rows(round_dir, "critic", ["critic", "label_correct"]).to_pylist()
        samples = sum(p["samples"] for p in problems)
        attempts = samples + sum(p["revisions"] for p in problems)
        accepted = sum(p["accepted"] for p in problems)
        sampled = [p for p in problems if p["samples"]]
        values = {
            "problems": len(problems),
            "samples": samples,
            "revisions": sum(p["revisions"] for p in problems),
            "revisions_accepted": sum(p["revisions_accepted"] for p in problems),
            "tokens": sum(p["tokens"] for p in problems),
            "accepted": accepted,
            "accept_rate": accepted / attempts if attempts else 0.0,
            "pass_at_1": _mean(p["verified"] / p["samples"] for p in sampled),
            f"pass_at_{k}": _mean(pass_at_k(p["samples"], p["verified"], k) for p in sampled),
            "solved_problems": sum(p["accepted"] > 0 for p in problems),
            "status": _count(p["status"] for p in problems),
            "critic": critic_scores(critic),
        }
        from selfplay.hygiene import hygiene_stats
        from selfplay.products import product_stats

        values.update(product_stats(round_dir), **hygiene_stats(round_dir))
        return cls(values)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.values)

    @staticmethod
    def table(stats: dict[str, Any]) -> str:
        c = stats.get("critic", {})
        rows = [
            ("problems", stats["problems"]), ("samples (+revisions)", f"{stats['samples']} (+{stats['revisions']})"),
            ("accepted", stats["accepted"]), ("accept rate", f"{stats['accept_rate']:.3f}"),
            ("pass@1", f"{stats['pass_at_1']:.3f}"),
            *[(k.replace("pass_at_", "pass@"), f"{v:.3f}") for k, v in stats.items() if k.startswith("pass_at_") and k != "pass_at_1"],
            ("revisions accepted", stats["revisions_accepted"]),
            ("critic accuracy", _fmt(c.get("accuracy"))), ("critic precision (wrong)", _fmt(c.get("precision"))),
            ("critic recall (wrong)", _fmt(c.get("recall"))),
            ("preference pairs", stats.get("pairs", 0)), ("prm rows", stats.get("prm", {}).get("rows", 0)),
            ("dedup removed (exact/near)", f"{stats.get('dedup', {}).get('exact', 0)}/{stats.get('dedup', {}).get('near', 0)}"),
            ("decontaminated problems", stats.get("decontamination", {}).get("dropped", 0)),
            ("tokens", stats["tokens"]), ("seconds", stats.get("seconds", "")),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(["round summary", *(f"  {k:<{width}}  {v}" for k, v in rows)])


def critic_scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The critic against the verifier. "Positive" is a call of *wrong*: the critic's job is to
    catch bad traces, so precision and recall are of its wrong-calls. Unparsable outputs count as
    disagreement in accuracy and are reported separately."""
    judged = [(r["critic"]["correct"] if r["critic"] else None, r["label_correct"]) for r in rows]
    n = len(judged)
    tp = sum(c is False and not y for c, y in judged)
    fp = sum(c is False and y for c, y in judged)
    fn = sum(c is not False and not y for c, y in judged)
    return {
        "judged": n,
        "unparsable": sum(c is None for c, _ in judged),
        "accuracy": sum(c == y for c, y in judged) / n if n else None,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
    }


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


@dataclass
class Progress:
    """The live progress line: problems done, samples/s, tokens/s, accept rate, ETA."""

    total: int | None
    every_s: float = 10.0
    generated_tokens: Callable[[], int] = lambda: 0
    """Tokens the engine pools generated so far (solver and critic)."""
    started: float = field(default_factory=time.time)
    done: int = 0
    resumed: int = 0
    bad_rows: int = 0
    failed: int = 0
    samples: int = 0
    attempts: int = 0
    accepted: int = 0

    def finished(self, outcome) -> None:
        self.done += 1
        self.samples += outcome.samples
        self.attempts += len(outcome.attempts)
        self.accepted += sum(a.accepted for a in outcome.attempts)

    async def report_forever(self) -> None:
        if self.every_s <= 0:
            return
        while True:
            await asyncio.sleep(self.every_s)
            self.print_line()

    def print_line(self, final: bool = False) -> None:
        if self.every_s <= 0 and not final:
            return
        elapsed = max(time.time() - self.started, 1e-9)
        tokens = self.generated_tokens()
        total = f"/{self.total - self.resumed}" if self.total is not None else ""
        eta = ""
        if self.total is not None and self.done:
            left = self.total - self.resumed - self.done - self.failed
            eta = f" eta {left * elapsed / self.done:.0f}s"
        rate = self.accepted / self.attempts if self.attempts else 0.0
        extra = "".join(f" {name} {n}" for name, n in (("resumed", self.resumed), ("bad rows", self.bad_rows), ("failed", self.failed)) if n)
        print(f"[round] problems {self.done}{total} | {self.samples / elapsed:.1f} samples/s | "
              f"{tokens / elapsed:.0f} tok/s | accept {rate:.2f}{eta}{extra}", file=sys.stderr, flush=True)

    def summary(self) -> dict[str, Any]:
        elapsed = time.time() - self.started
        return {"problems": self.done, "resumed": self.resumed, "bad_rows": self.bad_rows, "failed": self.failed,
                "samples": self.samples, "generated_tokens": self.generated_tokens(),
                "seconds": round(elapsed, 2), "tokens_per_s": round(self.generated_tokens() / elapsed, 1) if elapsed > 0 else 0.0}
