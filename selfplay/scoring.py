"""Scoring against the ground truth: one definition of each number every report shows.

A solver is scored per held-out cell (task family x difficulty) and per band (the macro mean over
its cells); a critic by its calls against the verifier's labels. eval.json (selfplay.evaluate),
bootstrap.json (selfplay.bootstrap) and a round's stats.json (selfplay.stats) all take their
numbers, key names and markdown table from here, so a name means the same thing in each of them.

    cell = solver_cell(problems, greedy_texts, sampled_texts, k=4)   # {"problems", "pass@1", "exact", ...}
    critic_metrics([CriticCall(said_correct=False, said_step=2, correct=False, wrong_step=2)])

The critic is also a ranker: its score (the probability it gives to "correct", selfplay.prompts)
is held to the verifier's labels by AUC and by the accuracy at its best threshold, the numbers
test-time selection (critic-best-of-k, selfplay.evaluate) lives on. Shares are rounded to DIGITS places.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Any, Mapping, Sequence

Band = dict[str, list[int]]
"""One band of problems: task family -> difficulties, e.g. {"addition": [4, 5, 6]}."""
Bands = dict[str, Band]
"""Named bands: band name -> Band, e.g. {"easy": {"addition": [1, 2, 3]}, "hard": {...}}."""
Cells = dict[str, dict[str, dict[str, dict[str, Any]]]]
"""Scored cells: band name -> task family -> difficulty (as a string, a JSON key) -> solver_cell()."""

DIGITS = 4


# ------------------------------------------------------------------------------ solver


def same_answer(completion: str, gold: str) -> bool:
    """The completion's final answer equals the gold up to whitespace and letter case: the exact
    match ("exact") an answer-only model can be held to. pass@1 is the verifier's verdict instead,
    which also checks the steps where the task has a step checker."""
    from verifiers.extract import final_answer

    answer = final_answer(completion)
    return answer is not None and " ".join(answer.split()).lower() == " ".join(gold.split()).lower()


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021). Undefined for n < k: a
    problem with fewer samples than k says nothing about k draws (the formula would give 1.0)."""
    if k < 1 or not 0 <= c <= n:
        raise ValueError(f"pass@k needs k >= 1 and 0 <= c <= n, got n={n} c={c} k={k}")
    if n < k:
        raise ValueError(f"pass@{k} is undefined with only {n} samples")
    if k == 1:
        return c / n  # the same number, without the float error of 1 - (n - c) / n
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def mean_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> float | None:
    """Macro mean of pass@k over problems, each given as (samples, correct); None for no problem."""
    return sum(pass_at_k(n, c, k) for n, c in counts) / len(counts) if counts else None


def solver_cell(problems: Sequence[Any], greedy: Sequence[str], sampled: Sequence[Sequence[str]] = (),
                k: int = 1, verify: bool = True) -> tuple[dict[str, Any], list[tuple[Any, str, Any]]]:
    """One held-out cell: `problems` (selfplay.records.Problem), their greedy completions and,
    optionally, sampled ones. Returns the cell's numbers and the traces judged on the way
    (problem, text, verdict): the sampled ones when there are any, else the greedy ones.

    "pass@1": greedy, the verifier's verdict; "exact": greedy, same_answer; with samples,
    "pass@k" (unbiased, k from the call) and "sample_accuracy" (mean share of samples verified).
    `verify=False` scores "exact" alone (the answer-only model, whose traces have no steps).
    """
    import verifiers

    n = len(problems)
    cell: dict[str, Any] = {"problems": n, "exact": _share(sum(same_answer(t, p.answer) for p, t in zip(problems, greedy)), n)}
    if not verify:
        return cell, []
    verdicts = [verifiers.verify(p.to_dict(), t) for p, t in zip(problems, greedy)]
    cell["pass@1"] = _share(sum(v.correct for v in verdicts), n)
    if not any(sampled):
        return cell, list(zip(problems, greedy, verdicts))
    judged, counts = [], []
    for p, texts in zip(problems, sampled):
        verdicts = [verifiers.verify(p.to_dict(), t) for t in texts]
        judged += [(p, t, v) for t, v in zip(texts, verdicts)]
        counts.append((len(texts), sum(v.correct for v in verdicts)))
    cell[f"pass@{k}"] = round(mean_pass_at_k(counts, k), DIGITS)
    cell["sample_accuracy"] = round(mean_pass_at_k(counts, 1), DIGITS)
    return cell, judged


def band_means(cells: Sequence[Mapping[str, Any]], k: int | None, per_problem: bool = False) -> dict[str, float]:
    """A band's numbers: the macro mean of its cells' greedy pass@1 ("pass_at_1") and, when the
    cells were sampled, of their pass@k ("pass_at_k"). `per_problem`: each cell weighted by its
    problems instead, the mean over the problems of a held-out dataset (whose cells, one per
    difficulty, differ in size); off by at most 5e-5 before rounding, from the cells' rounding."""
    weights = [c["problems"] if per_problem else 1 for c in cells]

    def mean(key: str) -> float:
        return round(sum(w * c[key] for w, c in zip(weights, cells)) / sum(weights), DIGITS)

    out = {"pass_at_1": mean("pass@1")}
    if k is not None:
        out["pass_at_k"] = mean(f"pass@{k}")
    return out


# ------------------------------------------------------------------------------ critic


@dataclass(frozen=True)
class CriticCall:
    """One critic verdict on a trace, beside the ground truth for that trace."""

    said_correct: bool | None
    """The critic's call: True = correct, False = wrong, None = its output did not parse."""
    said_step: int | None
    """The first wrong step the critic named (when it called the trace wrong)."""
    correct: bool
    """The ground truth: the verifier's (or the step checker's) label."""
    wrong_step: int | None
    """The trace's actual first wrong step, where the verifier can name one."""
    score: float | None = None
    """The critic's probability that the trace is correct (selfplay.prompts.critic_score); None
    where its output did not parse."""


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve of `scores` against `labels` (True = positive): the chance that a
    random positive scores above a random negative, a tie counting one half (Mann-Whitney U with
    average ranks). None when one class is absent: no ranking to measure."""
    positives = sum(bool(x) for x in labels)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):  # a run of equal scores shares the mean of its ranks (1-based)
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for t in range(i, j + 1):
            ranks[order[t]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, x in zip(ranks, labels) if x)
    return round((rank_sum - positives * (positives + 1) / 2) / (positives * negatives), DIGITS)


def best_threshold(scores: Sequence[float], labels: Sequence[bool]) -> tuple[float | None, float | None]:
    """(threshold, accuracy): the accuracy of calling "correct" exactly the scores >= threshold, at
    the threshold that maximises it (every distinct score, and one above them all, is tried; the
    lowest of equally good thresholds wins). (None, None) for no example. An upper bound on what
    a threshold picked on other data reaches: read it beside `accuracy`, the critic's own call."""
    if not scores:
        return None, None
    right_if_all_wrong = sum(not x for x in labels)
    best_t, best = float("inf"), right_if_all_wrong
    right = right_if_all_wrong
    pairs = sorted(zip(scores, labels), key=lambda p: -p[0])
    for i, (s, x) in enumerate(pairs):  # lower the threshold past each score in turn
        right += 1 if x else -1
        if i + 1 < len(pairs) and pairs[i + 1][0] == s:
            continue
        if right >= best:
            best_t, best = s, right
    return (None if best_t == float("inf") else round(best_t, DIGITS)), _share(best, len(pairs))


def critic_metrics(calls: Sequence[CriticCall]) -> dict[str, Any]:
    """The critic against the ground truth. Catching bad traces is its job, so the positive class
    is *wrong*: `wrong_precision` and `wrong_recall` are of its calls of wrong (None where nothing
    was called wrong, or nothing was wrong: a 0 there would claim a miss that never happened).
    An unparsable call counts as a disagreement in `accuracy` and is counted in `unparsed`.
    `first_wrong_step_accuracy` is over every wrong trace whose wrong step is known (a trace the
    critic called correct is a miss there too). As a ranker: `auc` of its score against the
    verifier's label (correct = positive; None when a class is absent), and the accuracy at the
    best threshold on the score (`best_threshold`, `best_threshold_accuracy`); an unparsed call
    has no score and is left out of the three."""
    n = len(calls)
    said_wrong = sum(c.said_correct is False for c in calls)
    wrong = sum(not c.correct for c in calls)
    caught = [c for c in calls if c.said_correct is False and not c.correct]
    located = [c for c in calls if not c.correct and c.wrong_step is not None]
    scored = [c for c in calls if c.score is not None]
    threshold, at_threshold = best_threshold([c.score for c in scored], [c.correct for c in scored])
    return {
        "examples": n,
        "wrong_share": _share(wrong, n),
        "accuracy": _share(sum(c.said_correct == c.correct for c in calls), n),
        "wrong_precision": _share(len(caught), said_wrong),
        "wrong_recall": _share(len(caught), wrong),
        "first_wrong_step_accuracy": _share(sum(c.said_correct is False and c.said_step == c.wrong_step
                                                for c in located), len(located)),
        "unparsed": sum(c.said_correct is None for c in calls),
        "auc": auc([c.score for c in scored], [c.correct for c in scored]),
        "best_threshold": threshold,
        "best_threshold_accuracy": at_threshold,
    }


# ------------------------------------------------------------------------------ test-time compute


@dataclass(frozen=True)
class Sample:
    """One sampled trace of a problem, as test-time selection sees it."""

    answer: str | None
    """Its extracted final answer, normalised (the vote's key); None when it has none."""
    correct: bool
    """The verifier's verdict on the trace."""
    score: float | None
    """The critic's probability that it is correct; None when the critic's output did not parse
    (it then ranks below every scored sample and adds nothing to a weighted vote)."""


SELECTIONS = ("majority", "critic_best", "critic_vote", "oracle")
"""The test-time selection rules selection_curves scores, as eval.json names them."""


def selection_curves(problems: Sequence[Sequence[Sample]]) -> dict[str, dict[int, float]]:
    """Accuracy of picking one trace out of k samples per problem, for k = 1, 2, 4, ... up to the
    samples each problem has (a power of 2, the same for all), averaged over problems:

    - "majority": the answer most samples give (a tie: the one given first); its first trace.
    - "critic_best": the trace the critic scores highest (a tie: the first).
    - "critic_vote": the answer with the highest sum of critic scores (a tie: the majority rule);
      its highest-scored trace.
    - "oracle": pass@k, the chance that any of k is verified (the unbiased estimate).

    A pick counts when the verifier accepts the picked trace, the same verdict pass@1 is. With n
    samples, k < n is scored on the n/k disjoint blocks of k consecutive samples, averaged: unbiased
    like a random draw of k, with every sample used at every k. Samples without an answer never
    win a vote (with none answered, the first trace is the pick)."""
    n = len(problems[0]) if problems else 0
    if n < 1 or n & (n - 1) or any(len(p) != n for p in problems):
        raise ValueError(f"selection_curves needs the same power-of-2 number of samples per problem, got {n}")
    ks = [2**i for i in range(n.bit_length())]
    curves = {name: {} for name in SELECTIONS}
    for k in ks:
        totals = dict.fromkeys(SELECTIONS[:3], 0.0)
        for samples in problems:
            blocks = [samples[i : i + k] for i in range(0, n, k)]
            for name, pick in (("majority", _majority), ("critic_best", _critic_best), ("critic_vote", _critic_vote)):
                totals[name] += sum(pick(b).correct for b in blocks) / len(blocks)
        for name in SELECTIONS[:3]:
            curves[name][k] = round(totals[name] / len(problems), DIGITS)
        curves["oracle"][k] = round(mean_pass_at_k([(n, sum(s.correct for s in p)) for p in problems], k), DIGITS)
    return curves


def _score(s: Sample) -> float:
    return -1.0 if s.score is None else s.score


def _votes(block: Sequence[Sample], weight) -> dict[str, tuple[float, int, int]]:
    """Per answer: (summed weight, count, minus the index of its first sample) — a sort key."""
    votes: dict[str, tuple[float, int, int]] = {}
    for i, s in enumerate(block):
        if s.answer is not None:
            w, c, first = votes.get(s.answer, (0.0, 0, -i))
            votes[s.answer] = (w + weight(s), c + 1, first)
    return votes


def _majority(block: Sequence[Sample]) -> Sample:
    votes = _votes(block, lambda s: 0.0)
    if not votes:
        return block[0]
    winner = max(votes, key=lambda a: (votes[a][1], votes[a][2]))
    return next(s for s in block if s.answer == winner)


def _critic_best(block: Sequence[Sample]) -> Sample:
    return max(enumerate(block), key=lambda p: (_score(p[1]), -p[0]))[1]


def _critic_vote(block: Sequence[Sample]) -> Sample:
    votes = _votes(block, lambda s: max(_score(s), 0.0))
    if not votes:
        return block[0]
    winner = max(votes, key=lambda a: votes[a])
    return _critic_best([s for s in block if s.answer == winner])


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, DIGITS) if whole else None


# ------------------------------------------------------------------------------ table


def summary_table(cells: Cells, critic: Mapping[str, Any] | None, k: int | None = None,
                  answer_only: Cells | None = None) -> str:
    """Markdown: one line per held-out cell (with pass@k when `k` is given, and the answer-only
    model's exact match beside each cell when `answer_only` is), then the critic's numbers."""
    head = ["band", "task", "difficulty", "problems", "pass@1", *([f"pass@{k}"] if k else []), "exact",
            *(["answer-only exact"] if answer_only is not None else [])]
    lines = [_row(head), _row(["---"] * len(head))]
    for band, families in cells.items():
        for fam, by_difficulty in families.items():
            for d, cell in by_difficulty.items():
                other = (answer_only or {}).get(band, {}).get(fam, {}).get(d, {})
                lines.append(_row([band, fam, d, cell["problems"], cell.get("pass@1", "-"),
                                   *([cell.get(f"pass@{k}", "-")] if k else []), cell["exact"],
                                   *([other.get("exact", "-")] if answer_only is not None else [])]))
    if critic:
        keys = ("examples", "wrong_share", "accuracy", "auc", "best_threshold_accuracy", "wrong_precision",
                "wrong_recall", "first_wrong_step_accuracy", "unparsed")
        lines += ["", _row(["critic examples", "wrong share", "accuracy", "AUC", "accuracy at best threshold",
                            "wrong precision", "wrong recall", "first wrong step", "unparsed"]), _row(["---"] * len(keys)),
                  _row([critic.get(key, "-") for key in keys])]
    return "\n".join(lines)


def _row(values: Sequence[Any]) -> str:
    return "| " + " | ".join("-" if v is None else str(v) for v in values) + " |"
