"""The flywheel's report: the per-round table (both arms) as markdown, and a plot of held-out pass@1
and verified rate per round. Written next to flywheel.json as report.md and report.png.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from selfplay.storage import write_file

COLUMNS = ("round", "difficulty", "pass_at_1", "pass_at_k", "verified_rate", "accepted", "critic_accuracy",
           "critic_auc", "tokens", "seconds")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, int) and value >= 10_000:
        return f"{value:,}"
    return str(value)


def round_table(state: dict[str, Any]) -> str:
    """One markdown row per round and arm; round 0 is the start model."""
    lines = ["| arm | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for arm, key in (("verified", "rounds"), ("control", "control")):
        rows = state.get(key) or []
        if arm == "control" and len(rows) <= 1:
            continue
        for row in rows:
            lines.append(f"| {arm} | " + " | ".join(_fmt(row.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines)


def _bands_table(state: dict[str, Any]) -> str:
    rows = state.get("rounds") or []
    bands = sorted({b for r in rows for b in r.get("bands", {})})
    if not bands:
        return ""
    lines = ["| arm | round | " + " | ".join(f"{b} pass@1" for b in bands) + " |", "|---" * (len(bands) + 2) + "|"]
    for arm, key in (("verified", "rounds"), ("control", "control")):
        for r in state.get(key) or []:
            if arm == "control" and r["round"] == 0:
                continue
            lines.append(f"| {arm} | {r['round']} | " + " | ".join(_fmt(r["bands"].get(b)) for b in bands) + " |")
    return "\n".join(lines)


def markdown(state: dict[str, Any]) -> str:
    rounds = state.get("rounds") or []
    control = state.get("control") or []
    first, last = rounds[0]["pass_at_1"], rounds[-1]["pass_at_1"]
    split = state.get("split")  # a flywheel on a source: its held-out set instead of the hard band
    heldout = (f"Pass@1 on the {split['heldout']['problems']} held-out problems of {split['heldout']['source']}"
               if split else "Held-out hard-split pass@1")
    lines = [
        "# Flywheel report", "",
        f"{heldout} went from {first:.3f} (start model) to {last:.3f} after "
        f"{len(rounds) - 1} round(s) of training on the model's own verified traces"
        + (f"; the control arm (every trace, unverified) ended at {control[-1]['pass_at_1']:.3f}." if len(control) > 1 else "."),
        "",
        f"`pass_at_1`: greedy, {'the held-out problems' if split else 'held-out problems of the hard band'} (never trained on). `verified_rate`: share of the",
        "round's sampled traces the verifier accepts. `accepted`: traces that entered distillation (the control",
        "keeps all). `tokens`: tokens generated in the round. `seconds`: generate + distil + evaluate.", "",
        round_table(state), "", "Pass@1 per held-out band:", "", _bands_table(state), "",
        "![pass@1 and verified rate per round](report.png)", "",
    ]
    return "\n".join(lines)


def plot(state: dict[str, Any], path: Path) -> None:
    """Two panels: held-out pass@1 (hard band) and verified rate per round, both arms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for arm, key, style in (("verified traces", "rounds", "o-"), ("control: all traces, unverified", "control", "s--")):
        rows = state.get(key) or []
        if len(rows) <= 1 and key == "control":
            continue
        left.plot([r["round"] for r in rows], [r["pass_at_1"] for r in rows], style, label=arm)
        rated = [r for r in rows if r.get("verified_rate") is not None]
        right.plot([r["round"] for r in rated], [r["verified_rate"] for r in rated], style, label=arm)
    left.set(title="held-out pass@1 (hard band)", xlabel="round (0 = start model)", ylabel="pass@1", ylim=(0, 1))
    right.set(title="verified rate of sampled traces", xlabel="round", ylabel="verified share", ylim=(0, 1))
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    write_file(path, png.getvalue())


def write_report(state: dict[str, Any], out_dir: Path) -> None:
    """report.md and report.png into `out_dir` (each written atomically)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_file(out_dir / "report.md", markdown(state).encode())
    plot(state, out_dir / "report.png")
