"""Round statistics (stats.json, the summary table) and the live progress line.

Final statistics are computed from the committed shards, not from counters, so a round that was
killed and resumed reports the same numbers as one that ran straight through. pass@k and the
critic's numbers are defined once, in selfplay.scoring.

`kept_rate` is kept traces over attempts (samples and revisions): what the live line shows as
"kept". The flywheel's `verified_rate` (verified over sampled traces) is another number.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from selfplay.scoring import CriticCall, critic_metrics, mean_pass_at_k
from selfplay.shards import load_rows


@dataclass
class RoundStats:
    values: dict[str, Any]

    @classmethod
    def from_round(cls, round_dir: str, wave: int) -> "RoundStats":
        """`wave`: the strategy's wave size, the k of `pass_at_wave` (the chance that one wave of
        samples holds a verified trace), over the problems that drew at least a wave."""
        problems = load_rows(round_dir, "problems").to_pylist()
        critic = load_rows(round_dir, "critic", ["critic", "label_correct", "label_first_wrong_step"]).to_pylist()
        samples = sum(p["samples"] for p in problems)
        attempts = samples + sum(p["revisions"] for p in problems)
        accepted = sum(p["accepted"] for p in problems)
        counts = [(p["samples"], p["verified"]) for p in problems if p["samples"]]
        values = {
            "problems": len(problems),
            "samples": samples,
            "revisions": sum(p["revisions"] for p in problems),
            "revisions_accepted": sum(p["revisions_accepted"] for p in problems),
            "tokens": sum(p["tokens"] for p in problems),
            "accepted": accepted,
            "kept_rate": accepted / attempts if attempts else 0.0,
            "pass_at_1": mean_pass_at_k(counts, 1) or 0.0,
            "wave": wave,
            "pass_at_wave": mean_pass_at_k([(n, c) for n, c in counts if n >= wave], wave),
            "revise_vs_resample": revise_vs_resample(problems),
            "solved_problems": sum(p["accepted"] > 0 for p in problems),
            "status": _count(p["status"] for p in problems),
            "critic": critic_metrics([CriticCall(r["critic"]["correct"] if r["critic"] else None,
                                                 r["critic"]["first_wrong_step"] if r["critic"] else None,
                                                 r["label_correct"], r["label_first_wrong_step"],
                                                 r["critic"]["score"] if r["critic"] else None) for r in critic]),
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
            ("accepted", stats["accepted"]), ("kept rate", f"{stats['kept_rate']:.3f}"),
            ("pass@1", f"{stats['pass_at_1']:.3f}"), (f"pass@{stats['wave']} (one wave)", _fmt(stats["pass_at_wave"])),
            ("revisions accepted", stats["revisions_accepted"]),
            ("verified per 1k tokens: revise / resample", "{} / {}".format(
                *(_fmt(stats.get("revise_vs_resample", {}).get(f"{kind}_verified_per_1k_tokens"))
                  for kind in ("revision", "sample")))),
            ("critic accuracy", _fmt(c.get("accuracy"))), ("critic AUC", _fmt(c.get("auc"))),
            ("critic precision (wrong)", _fmt(c.get("wrong_precision"))),
            ("critic recall (wrong)", _fmt(c.get("wrong_recall"))),
            ("preference pairs", stats.get("pairs", 0)), ("prm rows", stats.get("prm", {}).get("rows", 0)),
            ("dedup removed (exact/near)", f"{stats.get('dedup', {}).get('exact', 0)}/{stats.get('dedup', {}).get('near', 0)}"),
            ("decontaminated problems", stats.get("decontamination", {}).get("dropped", 0)),
            ("tokens", stats["tokens"]), ("seconds", stats.get("seconds", "")),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(["round summary", *(f"  {k:<{width}}  {v}" for k, v in rows)])


def revise_vs_resample(problems: list[dict[str, Any]]) -> dict[str, Any]:
    """Critique-guided revisions against fresh samples, at equal generated tokens: how many of each
    the verifier accepted, their share, and verified traces per 1,000 solver tokens spent on them
    (the critic's tokens are spent on every trace either way, so neither side pays them). A
    revision retries a trace that failed, so its problems are the harder ones: the comparison leans
    against revisions, and they earn their place only by winning it. Shares are None where nothing
    of that kind was generated (a round without revisions)."""
    revisions = sum(p["revisions"] for p in problems)
    revised = sum(p.get("revisions_verified") or 0 for p in problems)
    revision_tokens = sum(p.get("revision_tokens") or 0 for p in problems)
    samples = sum(p["samples"] for p in problems)
    verified = sum(p["verified"] for p in problems)
    sample_tokens = sum(p["tokens"] for p in problems) - revision_tokens

    def rate(part: int, whole: int, per: int = 1) -> float | None:
        return round(per * part / whole, 4) if whole else None

    return {"revisions": revisions, "revisions_verified": revised, "revision_tokens": revision_tokens,
            "revision_verified_share": rate(revised, revisions),
            "revision_verified_per_1k_tokens": rate(revised, revision_tokens, 1000),
            "samples": samples, "samples_verified": verified, "sample_tokens": sample_tokens,
            "sample_verified_share": rate(verified, samples),
            "sample_verified_per_1k_tokens": rate(verified, sample_tokens, 1000)}


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


@dataclass
class Progress:
    """The live progress line: problems done, samples/s, tokens/s, kept rate (as in stats.json), ETA."""

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
              f"{tokens / elapsed:.0f} tok/s | kept {rate:.2f}{eta}{extra}", file=sys.stderr, flush=True)

    def summary(self) -> dict[str, Any]:
        elapsed = time.time() - self.started
        return {"problems": self.done, "resumed": self.resumed, "bad_rows": self.bad_rows, "failed": self.failed,
                "samples": self.samples, "generated_tokens": self.generated_tokens(),
                "seconds": round(elapsed, 2), "tokens_per_s": round(self.generated_tokens() / elapsed, 1) if elapsed > 0 else 0.0}
