"""Held-out evaluation of a checkpoint: `python -m selfplay.evaluate model=<dir>` (conf/evaluate.yaml).

Solver: greedy pass@1 and sampled pass@k on problems of the held-out split (which no round ever
trains on: selfplay.tasks keeps it disjoint from train by content hash), per band, task and
difficulty. Or on the problems of a file or dataset (`source=math source.path=test.jsonl`): one
band, "hard" (the flywheel's headline), whose pass@1 is over all its problems, with a cell per
task and difficulty (MATH's level); a row that is not a usable problem is skipped and listed
with its reason under "rejected". Critic: the model judges held-out traces (its own samples on
those problems) and its calls and scores are held to the verifier's labels: accuracy, precision
and recall of "wrong", AUC of its score, accuracy at the best threshold. The numbers, their keys
and the table are selfplay.scoring's.

Test-time compute (`test_time`, on by default; selfplay.scoring.selection_curves): per band, 16
samples per held-out problem, each verified and judged by the critic, give the accuracy at k = 1,
2, 4, 8, 16 of majority vote over the extracted answers, the critic's best-of-k (its highest
score), a critic-weighted vote and the oracle pass@k, beside greedy pass@1 on the same problems.
Smaller k are scored on disjoint blocks of the 16 (16/k blocks of k, averaged): unbiased, and
every sample counts at every k. The critic's numbers then come from all those judged samples.

    report = evaluate(EvaluateConfig(model="models/reference"))
    report["bands"]["hard"]["pass_at_1"]      # macro mean over the band's cells

Writes eval.json (next to the model unless `out` says otherwise).
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from selfplay.problems import BadRow, SourceConfig, SourceError, iter_problems
from selfplay.prompts import VERDICT_LOGPROBS, PromptConfig, judge_completion, solver_messages
from selfplay.records import Problem
from selfplay.scoring import (Band, Bands, Cells, CriticCall, Sample, band_means, critic_metrics, selection_curves,
                              solver_cell, summary_table)
from selfplay.storage import write_json

log = logging.getLogger("selfplay.evaluate")

REPORT = "eval.json"


def check_bands(bands: Bands) -> Bands:
    """Validate band -> family -> difficulties against the task families; returns plain dicts."""
    from selfplay.tasks import check_difficulties

    if not isinstance(bands, dict) or not bands:
        raise ValueError(f"bands must map band names to {{family: [difficulties]}}, got {bands!r}")
    return {band: check_difficulties(f"bands.{band}", families) for band, families in bands.items()}


@dataclass(frozen=True)
class TestTimeConfig:
    """Test-time compute curves (eval.json `test_time`): selection among k samples per problem."""

    __test__ = False  # a config, not a pytest test class

    samples: int = 16
    """Samples per held-out problem, each verified and judged by the critic: the curves' largest k
    (a power of 2; k runs 1, 2, 4, ... up to it). 0 = no curves."""
    problems: int | None = None
    """Held-out problems per cell that get them (the first of each cell); None = every problem."""
    bands: tuple[str, ...] | None = None
    """The bands that get curves; None = every band."""
    temperature: float = 1.0
    """Sampling temperature of those samples."""

    def __post_init__(self):
        if self.samples < 0 or self.samples & (self.samples - 1):
            raise ValueError(f"test_time.samples must be 0 or a power of 2, got {self.samples}")
        if self.problems is not None and self.problems < 1:
            raise ValueError(f"test_time.problems must be >= 1 or null, got {self.problems}")
        if self.temperature <= 0:
            raise ValueError(f"test_time.temperature must be > 0, got {self.temperature}")


@dataclass(frozen=True)
class EvaluateConfig:
    model: str
    """The checkpoint: a model directory (or hub id)."""
    out: str | None = None
    """Where eval.json goes; None = inside the model directory."""
    bands: Bands = field(default_factory=lambda: {"easy": {"addition": [1, 2, 3]}, "hard": {"addition": [4, 5, 6]}})
    """Held-out problem bands: band -> task family -> difficulties (unused with `source`)."""
    source: SourceConfig | None = None
    """Held-out problems from a file or dataset instead of the procedural bands, read as generate
    reads them (`source=gsm8k source.path=test.jsonl`): every problem it gives, scored as band "hard"."""
    problems: int = 100
    """Held-out problems per (family, difficulty) cell (fewer where the space is smaller)."""
    seed: int = 0
    """Seeds the held-out draw (keep it fixed to compare checkpoints on the same problems)."""
    k: int = 4
    """pass@k's k (unbiased estimate from `samples` draws per problem)."""
    samples: int = 4
    """Sampled completions per problem for pass@k (>= k); 0 = greedy pass@1 only."""
    temperature: float = 1.0
    """Sampling temperature for pass@k."""
    max_tokens: int = 256
    """Most generated tokens per solver completion."""
    critic_examples: int = 200
    """Held-out traces the critic judges (the model's own samples, labelled by the verifier) when
    there are no test-time samples; with them, the critic judges every test-time sample instead
    (they need its scores). 0 = no critic at all (and no critic curves)."""
    critic_max_tokens: int = 32
    """Most generated tokens per critic verdict."""
    test_time: TestTimeConfig = field(default_factory=TestTimeConfig)
    """Test-time compute curves per band: majority vote, critic-best-of-k, critic-weighted vote,
    oracle pass@k."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    """The prompts the solver and critic see (selfplay.prompts)."""
    engine: str = "hf"
    """"hf", "vllm" or "auto" (selfplay.engines.config.EngineConfig.engine)."""
    device: str = "auto"
    """"cpu", "cuda" or "auto"."""
    dtype: str = "auto"
    """"auto" = bfloat16 on GPU, float32 on CPU."""
    batch_size: int = 64
    """hf engine: sequences per generation batch."""

    def __post_init__(self):
        if not str(self.model).strip():
            raise ValueError("model must be a model directory or hub id")
        object.__setattr__(self, "bands", check_bands(self.bands))
        if self.problems < 1 or self.k < 1 or self.batch_size < 1:
            raise ValueError("problems, k and batch_size must be >= 1")
        if self.samples and self.samples < self.k:
            raise ValueError(f"samples ({self.samples}) must be >= k ({self.k}) to estimate pass@k, or 0")
        if self.samples < 0 or self.critic_examples < 0:
            raise ValueError("samples and critic_examples must be >= 0")
        if self.temperature < 0 or self.max_tokens < 1 or self.critic_max_tokens < 1:
            raise ValueError("temperature must be >= 0; max_tokens and critic_max_tokens >= 1")

    @property
    def report_path(self) -> Path:
        return Path(self.out) if self.out else Path(self.model) / REPORT

    def engine_config(self):
        from selfplay.engines.config import EngineConfig

        return EngineConfig(model=self.model, engine=self.engine, device=self.device, dtype=self.dtype,
                            batch_size=self.batch_size, seed=self.seed, enforce_eager=True)


@dataclass
class _Cell:
    band: str
    family: str
    """The procedural family, or a source's task ("math", "code")."""
    difficulty: int | None
    problems: list[Problem]
    greedy: list[str] = field(default_factory=list)
    samples: list[list[str]] = field(default_factory=list)
    test_time: list[list[tuple[str, Any, Any]]] = field(default_factory=list)
    """Per problem given test-time samples: (text, verifier verdict, critic verdict) per sample."""


def _seed(problem_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"eval|{problem_id}".encode()).digest()[:4], "little")


def heldout_cells(cfg: EvaluateConfig, rejected: list[dict[str, str]] | None = None) -> list[_Cell]:
    """The held-out problems by cell; a source's rows that are no usable problem go to `rejected`."""
    return _cells(cfg.bands, cfg.problems, cfg.seed) if cfg.source is None else _source_cells(cfg.source, rejected)


def _source_cells(source: SourceConfig, rejected: list[dict[str, str]] | None) -> list[_Cell]:
    rejected = [] if rejected is None else rejected
    cells: dict[tuple[str, int | None], _Cell] = {}
    seen: set[str] = set()
    for item in iter_problems(source):
        if isinstance(item, BadRow):
            rejected.append(item.to_row())
        elif item.id in seen:
            rejected.append({"where": item.source, "reason": f"duplicate problem {item.id}: the same task, question "
                             "and gold as an earlier row", "row": item.question[:500]})
        else:
            seen.add(item.id)
            cells.setdefault((item.task, item.difficulty), _Cell("hard", item.task, item.difficulty, [])).problems.append(item)
    if not cells:
        first = f" (the first rejected: {rejected[0]['reason']})" if rejected else ""
        raise SourceError(f"no usable held-out problem in {source.path}{first}")
    return [cells[key] for key in sorted(cells, key=lambda key: (key[0], key[1] is None, key[1] or 0))]


def _cells(bands: Bands, problems: int, seed: int) -> list[_Cell]:
    from selfplay.tasks import make_problems

    return [_Cell(band, fam, d, make_problems(fam, problems, seed, d, "heldout", allow_fewer=True))
            for band, families in bands.items() for fam, ds in families.items() for d in ds]


def _completions(engine, requests) -> list[list[Any]]:
    # A request the engine cannot run (result.error) scores as n empty, wrong answers.
    from selfplay.engines.base import Completion

    return [r.completions or [Completion("", 0, "error")] * q.n for q, r in zip(requests, engine.generate(requests))]


def _texts(engine, requests) -> list[list[str]]:
    return [[c.text for c in cs] for cs in _completions(engine, requests)]


def _critic_requests(cfg: EvaluateConfig, pairs: Sequence[tuple[Problem, str]]) -> list[Any]:
    from selfplay.engines.base import GenerationRequest

    return [GenerationRequest(cfg.prompt.critic_messages(p.question, t), max_tokens=cfg.critic_max_tokens,
                              logprobs=VERDICT_LOGPROBS) for p, t in pairs]


def _solve(engine, cfg: EvaluateConfig, cells: list[_Cell]) -> None:
    """Greedy and sampled completions for every cell, in one engine call each (full batches)."""
    from selfplay.engines.base import GenerationRequest

    problems = [p for c in cells for p in c.problems]
    prompt = cfg.prompt.solver_messages
    greedy = _texts(engine, [GenerationRequest(prompt(p.question), max_tokens=cfg.max_tokens) for p in problems])
    sampled = _texts(engine, [GenerationRequest(prompt(p.question), n=cfg.samples, temperature=cfg.temperature,
                                                max_tokens=cfg.max_tokens, seed=_seed(p.id)) for p in problems]) \
        if cfg.samples else [[] for _ in problems]
    at = 0
    for c in cells:
        c.greedy = [g[0] for g in greedy[at : at + len(c.problems)]]
        c.samples = sampled[at : at + len(c.problems)]
        at += len(c.problems)


def _test_time(engine, cfg: EvaluateConfig, cells: list[_Cell]) -> None:
    """`test_time.samples` samples for the first `test_time.problems` problems of every cell, each
    verified and judged by the critic (judged only when the critic is on: critic_examples > 0)."""
    import verifiers
    from selfplay.engines.base import GenerationRequest

    tt = cfg.test_time
    chosen = [(c, c.problems[: tt.problems]) for c in cells if tt.bands is None or c.band in tt.bands]
    problems = [p for _, ps in chosen for p in ps]
    texts = _texts(engine, [GenerationRequest(cfg.prompt.solver_messages(p.question), n=tt.samples,
                                              temperature=tt.temperature, max_tokens=cfg.max_tokens,
                                              seed=_seed(f"test-time|{p.id}")) for p in problems])
    pairs = [(p, t) for p, ts in zip(problems, texts) for t in ts]
    verdicts = [verifiers.verify(p.to_dict(), t) for p, t in pairs]
    calls = [judge_completion(cs[0]) for cs in _completions(engine, _critic_requests(cfg, pairs))] \
        if cfg.critic_examples else [None] * len(pairs)
    judged = iter(zip((t for _, t in pairs), verdicts, calls))
    for c, ps in chosen:
        c.test_time = [[next(judged) for _ in range(tt.samples)] for _ in ps]


def test_time_curves(cells: list[_Cell], per_problem: bool) -> dict[str, Any]:
    """eval.json's `test_time`: per band, selection_curves over its cells' test-time samples (the
    band's number is the mean over its cells, weighted as its pass@1 is), with greedy pass@1 on the
    same problems ("greedy") and how many problems and samples there were."""
    from verifiers.extract import final_answer

    def answer(text: str, verdict) -> str | None:
        found = verdict.extracted if verdict.extracted is not None else final_answer(text)
        return " ".join(found.split()).lower() if found else None

    out: dict[str, Any] = {}
    for band in dict.fromkeys(c.band for c in cells):
        scored = []
        for c in (c for c in cells if c.band == band and c.test_time):
            samples = [[Sample(answer(t, v), v.correct, call.score if call else None) for t, v, call in problem]
                       for problem in c.test_time]
            greedy, _ = solver_cell(c.problems[: len(samples)], c.greedy[: len(samples)])
            scored.append((len(samples), selection_curves(samples), greedy["pass@1"]))
        if not scored:
            continue
        weights = [n if per_problem else 1 for n, _, _ in scored]

        def mean(values: list[float]) -> float:
            return round(sum(w * v for w, v in zip(weights, values)) / sum(weights), 4)

        curves = {method: {k: mean([s[1][method][k] for s in scored]) for k in scored[0][1][method]}
                  for method in scored[0][1]}
        out[band] = curves | {"greedy": mean([g for _, _, g in scored]), "problems": sum(n for n, _, _ in scored),
                              "samples": max(curves["oracle"])}
    return out


def judge(engine, cfg: EvaluateConfig, labelled: Sequence[tuple[Problem, str, Any]]) -> dict[str, Any]:
    """The critic's calls on held-out traces, scored against the verifier's verdicts
    (selfplay.scoring.critic_metrics); {} when there is nothing to judge."""
    if not cfg.critic_examples or not labelled:
        return {}
    rng = random.Random(f"critic-eval|{cfg.seed}")
    chosen = rng.sample(list(labelled), min(cfg.critic_examples, len(labelled)))
    calls = [judge_completion(cs[0]) for cs in _completions(engine, _critic_requests(cfg, [(p, t) for p, t, _ in chosen]))]
    return critic_metrics([CriticCall(c.correct, c.first_wrong_step, v.correct, v.first_wrong_step, c.score)
                           for c, (_, _, v) in zip(calls, chosen)])


def greedy_cells(engine, bands: Bands, problems: int, seed: int, max_tokens: int, verify: bool = True) -> Cells:
    """Greedy pass@1 and exact match per held-out cell, one engine call per cell: the reference
    model's evaluation (selfplay.bootstrap), whose recorded numbers were generated in these
    batches. `verify=False`: the exact match alone (the answer-only contrast has no steps)."""
    from selfplay.engines.base import GenerationRequest

    scored: Cells = {}
    for c in _cells(bands, problems, seed):
        texts = _texts(engine, [GenerationRequest(solver_messages(p.question), max_tokens=max_tokens) for p in c.problems])
        cell, _ = solver_cell(c.problems, [t[0] for t in texts], verify=verify)
        scored.setdefault(c.band, {}).setdefault(c.family, {})[str(c.difficulty)] = cell
        log.info("%s %s d=%d: %s", c.band, c.family, c.difficulty, cell)
    return scored


def judge_planted_errors(engine, band: Band, *, problems: int, seed: int, examples: int, wrong_share: float,
                         lucky_share: float, max_tokens: int) -> dict[str, Any]:
    """The critic on `examples` reference traces of held-out problems of the band's step-checked
    families, `wrong_share` of them with a planted step error (`lucky_share` of those keeping the
    right answer): labels exact by construction, unlike the model's own traces that `judge` takes.
    Its problems are drawn with seed + 1, apart from the ones the solver is scored on."""
    from selfplay.engines.base import GenerationRequest
    from selfplay.tasks import make_problems
    from selfplay.tasks.judging import judged_traces
    from verifiers.steps import STEP_TASKS

    rng = random.Random(f"judge-eval|{seed}")
    pool = [p for fam, ds in band.items() if fam in STEP_TASKS for d in ds
            for p in make_problems(fam, problems, seed + 1, d, "heldout", allow_fewer=True)]
    if not pool:
        return {}
    chosen = [pool[rng.randrange(len(pool))] for _ in range(examples)]
    judged = judged_traces(chosen, rng, wrong_share=wrong_share, lucky_share=lucky_share)
    completions = _completions(engine, [GenerationRequest(j.messages(), max_tokens=max_tokens, logprobs=VERDICT_LOGPROBS)
                                        for j in judged])
    return critic_metrics([CriticCall(c.correct, c.first_wrong_step, j.correct, j.first_wrong_step, c.score)
                           for c, j in zip((judge_completion(cs[0]) for cs in completions), judged)])


def evaluate_engine(engine, cfg: EvaluateConfig) -> dict[str, Any]:
    """Evaluate an open engine on the held-out bands or source (no file written). A cell's
    difficulty key is "-" for a source's problems that have none."""
    started = time.perf_counter()
    rejected: list[dict[str, str]] = []
    cells = heldout_cells(cfg, rejected)
    _solve(engine, cfg, cells)
    if cfg.test_time.samples:
        _test_time(engine, cfg, cells)
    labelled: list[tuple[Problem, str, Any]] = []
    bands: dict[str, Any] = {}
    for c in cells:
        cell, judged = solver_cell(c.problems, c.greedy, c.samples, cfg.k)
        labelled += judged
        band = bands.setdefault(c.band, {"cells": {}})
        band["cells"].setdefault(c.family, {})["-" if c.difficulty is None else str(c.difficulty)] = cell
        log.info("%s %s d=%s: %s", c.band, c.family, c.difficulty, cell)
    for band in bands.values():
        band.update(band_means([cell for fam in band["cells"].values() for cell in fam.values()],
                               cfg.k if cfg.samples else None, per_problem=cfg.source is not None))
    test_time = test_time_curves(cells, per_problem=cfg.source is not None) if cfg.test_time.samples else {}
    for band, curves in test_time.items():
        log.info("%s test-time (greedy %s): %s", band, curves["greedy"],
                 {m: curves[m] for m in ("majority", "critic_best", "critic_vote", "oracle")})
    judged = [(t, v, call) for c in cells for problem in c.test_time for t, v, call in problem if call is not None]
    critic = critic_metrics([CriticCall(call.correct, call.first_wrong_step, v.correct, v.first_wrong_step, call.score)
                             for _, v, call in judged]) if judged else judge(engine, cfg, labelled)
    if critic:
        log.info("critic: %s", critic)
    if rejected:
        log.warning("%d held-out rows skipped, listed under \"rejected\" (the first: %s: %s)",
                    len(rejected), rejected[0]["where"], rejected[0]["reason"])
    return {"model": cfg.model, "k": cfg.k, "bands": bands, "critic": critic, "test_time": test_time,
            **({"rejected": rejected} if cfg.source is not None else {}),
            "seconds": round(time.perf_counter() - started, 2)}

def evaluate(cfg: EvaluateConfig, write: bool = True, engine=None) -> dict[str, Any]:
    """Load the model, evaluate it, and write eval.json (atomically). `engine`: an engine already
    serving cfg.model (the flywheel's engine actors, selfplay.actors.PooledEngine) to send the
    requests to instead; it stays open (the flywheel's next round generates on it)."""
    from selfplay.engines.load import load_engine

    own = engine is None
    engine = load_engine(cfg.engine_config()) if own else engine
    try:
        report = evaluate_engine(engine, cfg)
    finally:
        if own:
            engine.close()
    report = {"model_revision": getattr(engine, "model_revision", ""), "config": asdict(cfg)} | report
    if write:
        path = cfg.report_path
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, report)
    return report


def _run_and_print(config: EvaluateConfig) -> None:
    report = evaluate(config)
    print(summary_table({name: band["cells"] for name, band in report["bands"].items()}, report["critic"], report["k"]))
    print(f"wrote {config.report_path} ({report['seconds']} s)")


if __name__ == "__main__":
    from selfplay import cli
    from selfplay.config import typed

    cli.main("evaluate", lambda cfg: typed(EvaluateConfig, cli.plain(cfg), "evaluate"), _run_and_print)
