"""The flywheel's report: the per-round table (both arms) as markdown, the critic's test-time
selection and revisions against resampling, and a plot of held-out pass@1 and verified rate per
round beside the test-time curves (hard band, start model and last round). Written next to
flywheel.json as report.md and report.png.
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


METHODS = {"majority": "majority vote", "critic_best": "critic best-of-k", "critic_vote": "critic-weighted vote",
           "oracle": "oracle pass@k"}


def _curve_rounds(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The verified arm's rounds with test-time curves of the hard band: the start model and the last round."""
    return [r for r in state.get("rounds") or [] if (r.get("test_time") or {}).get("hard")]


def _test_time_table(state: dict[str, Any]) -> str:
    rows = _curve_rounds(state)
    if not rows:
        return ""
    ks = sorted({int(k) for r in rows for k in r["test_time"]["hard"]["oracle"]})
    lines = ["| round | greedy pass@1 | selection | " + " | ".join(f"k={k}" for k in ks) + " |",
             "|---" * (len(ks) + 3) + "|"]
    for r in rows:
        curves = r["test_time"]["hard"]
        for method, name in METHODS.items():
            by_k = {int(k): v for k, v in curves[method].items()}
            lines.append(f"| {r['round']} | {_fmt(curves['greedy'])} | {name} | " + " | ".join(_fmt(by_k.get(k)) for k in ks) + " |")
    return "\n".join(lines)


def _revise_table(state: dict[str, Any]) -> str:
    rows = [r for r in state.get("rounds") or [] if r.get("revise_vs_resample")]
    if not any(r["revise_vs_resample"]["revisions"] for r in rows):
        return "No round ran revisions (strategy.revisions=0): nothing to hold against resampling."
    lines = ["| round | revisions | verified share | verified per 1k tokens | fresh samples | verified share | verified per 1k tokens |",
             "|---" * 7 + "|"]
    for r in rows:
        v = r["revise_vs_resample"]
        lines.append(f"| {r['round']} | {v['revisions']} | {_fmt(v['revision_verified_share'])} | "
                     f"{_fmt(v['revision_verified_per_1k_tokens'])} | {v['samples']} | {_fmt(v['sample_verified_share'])} | "
                     f"{_fmt(v['sample_verified_per_1k_tokens'])} |")
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
        "Test-time compute on the hard band (the critic earns its place when its best-of-k beats the",
        "majority vote): accuracy of the trace each rule picks out of k samples per problem, the",
        "verifier's verdict on it; greedy pass@1 on the same problems beside it.", "",
        _test_time_table(state) or "No test-time curves (evaluate.test_time.samples=0).", "",
        "Critique-guided revisions against fresh samples, at equal generated tokens (verified arm):", "",
        _revise_table(state), "",
        "![pass@1, verified rate and test-time curves](report.png)", "",
    ]
    return "\n".join(lines)


def plot(state: dict[str, Any], path: Path) -> None:
    """Two panels: held-out pass@1 (hard band) and verified rate per round, both arms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curved = _curve_rounds(state)
    fig, axes = plt.subplots(1, 3 if curved else 2, figsize=(15 if curved else 10, 4))
    left, right = axes[0], axes[1]
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
    if curved:
        _plot_test_time(axes[2], [curved[0], curved[-1]] if len(curved) > 1 else curved)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    write_file(path, png.getvalue())


def _plot_test_time(ax, rows: list[dict[str, Any]]) -> None:
    """Accuracy against samples per problem (log2 axis), one colour per rule, the start model dashed."""
    colours = dict(zip(METHODS, ("tab:blue", "tab:red", "tab:purple", "tab:gray")))
    for r in rows:
        curves = r["test_time"]["hard"]
        style = "--" if r["round"] == 0 else "-"
        for method, name in METHODS.items():
            by_k = sorted((int(k), v) for k, v in curves[method].items())
            label = f"{name}, {'start' if r['round'] == 0 else 'round ' + str(r['round'])}"
            ax.plot([k for k, _ in by_k], [v for _, v in by_k], style, marker="o", ms=3, color=colours[method], label=label)
    ax.set_xscale("log", base=2)
    ax.set(title="test-time compute (hard band)", xlabel="samples per problem k", ylabel="accuracy", ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)


def write_report(state: dict[str, Any], out_dir: Path) -> None:
    """report.md and report.png into `out_dir` (each written atomically)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_file(out_dir / "report.md", markdown(state).encode())
    plot(state, out_dir / "report.png")
