"""Data hygiene every public pipeline applies: trace dedup and benchmark decontamination.

Dedup (per problem, deterministic, so a resumed round decides exactly as an uninterrupted one):

- exact: traces equal after normalisation (Unicode NFKC, whitespace runs collapsed, ends trimmed)
  to an earlier trace of the same problem in this round or in an earlier round of the same run
  (<out_dir>/round-<j>, j < k);
- near: traces whose MinHash Jaccard estimate (character shingles, `datasketch`) against an
  earlier trace of the same problem *and the same verdict* reaches `threshold`. A wrong trace one
  digit away from a right one is the most useful preference pair there is, so the two never count
  as duplicates of each other.

A duplicate stays in `rejected/` with `reject_reason` "duplicate (exact|near): ..." and enters no
training product (sft, pairs, prm).

Decontamination drops a problem before it is sampled when its question shares an n-gram of words
(lowercased, `ngram` long; public pipelines use 8 to 13) with any text of a benchmark file named in
config (JSONL, JSON, Parquet, a folder of them, or a `datasets` save_to_disk folder).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import orjson

_WORD = re.compile(r"\w+")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class DedupConfig:
    """Trace dedup (the Hydra `dedup` node)."""

    exact: bool = True
    """Drop traces equal, after normalisation, to an earlier trace of the same problem."""
    across_rounds: bool = True
    """Exact dedup also against the traces of earlier rounds in the same out_dir."""
    near: bool = True
    """Drop near-duplicates (MinHash) of an earlier trace of the same problem and verdict."""
    threshold: float = 0.9
    """Estimated Jaccard similarity of shingle sets at or above which a trace is a near-duplicate."""
    num_perm: int = 128
    """MinHash permutations: more estimate Jaccard more precisely, at more cost."""
    shingle: int = 5
    """Characters per shingle (normalised text)."""

    def __post_init__(self):
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.num_perm < 16 or self.shingle < 1:
            raise ValueError("num_perm must be >= 16 and shingle >= 1")


@dataclass(frozen=True)
class DecontamConfig:
    """Benchmark decontamination (the Hydra `decontam` node)."""

    benchmarks: list[str] = field(default_factory=list)
    """Local benchmark files or folders (e.g. the test splits of GSM8K and MATH); empty = off."""
    ngram: int = 13
    """Words per n-gram; a problem sharing one n-gram with a benchmark is dropped."""

    def __post_init__(self):
        if self.ngram < 1:
            raise ValueError(f"ngram must be >= 1, got {self.ngram}")


def normalize(text: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def _key(problem_id: str, text: str) -> bytes:
    return hashlib.blake2b(f"{problem_id}\n{normalize(text)}".encode(), digest_size=12).digest()


class Deduper:
    """Decides which traces of a problem are duplicates (see the module docstring)."""

    def __init__(self, cfg: DedupConfig, earlier_rounds: list[str] = ()):
        self.cfg = cfg
        self.earlier: dict[bytes, int] = {}
        if cfg.exact and cfg.across_rounds:
            from selfplay.shards import load_rows

            for round_dir in earlier_rounds:
                k = int(round_dir.rstrip("/").rsplit("-", 1)[-1])
                for kind in ("sft", "rejected"):
                    table = load_rows(round_dir, kind, ["problem_id", "messages"])
                    for row in table.to_pylist():
                        self.earlier.setdefault(_key(row["problem_id"], row["messages"][-1]["content"]), k)
        if cfg.near:
            # Here, not at the first finished problem: importing datasketch (it imports scipy) takes
            # about a second, which inside a round blocked the driver's event loop meanwhile.
            from datasketch import MinHash, MinHashLSH

            # datasketch picks the (bands, rows) split by numerical integration: about 45 ms, which per
            # problem was most of a round's driver time. It depends only on the config: computed once.
            first = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)
            self._bands = (first.b, first.r)
            # Likewise a MinHash draws its permutations (about 1 ms); every trace uses the same ones.
            template = MinHash(num_perm=cfg.num_perm, seed=1)
            self._permutations = (template.permutations, template.scheme)

    def duplicates(self, problem_id: str, traces: list[tuple[str, bool]]) -> dict[int, str]:
        """{index: reason} for the traces (text, verified) that duplicate an earlier one."""
        found: dict[int, str] = {}
        seen: dict[bytes, int] = {}
        for i, (text, _) in enumerate(traces):
            if not self.cfg.exact:
                break
            key = _key(problem_id, text)
            if key in self.earlier:
                found[i] = f"duplicate (exact): the same normalised trace is in round {self.earlier[key]}"
            elif key in seen:
                found[i] = f"duplicate (exact): the same normalised trace as trace {seen[key]} of this problem"
            else:
                seen[key] = i
        if self.cfg.near:
            found.update(self._near(traces, found))
        return found

    def _near(self, traces: list[tuple[str, bool]], skip: dict[int, str]) -> dict[int, str]:
        from datasketch import MinHash, MinHashLSH

        permutations, scheme = self._permutations
        found = {}
        for verdict in (True, False):
            group = [i for i, (_, correct) in enumerate(traces) if correct is verdict and i not in skip]
            if len(group) < 2:  # nothing to compare it with: no hashing (most problems, most verdicts)
                continue
            lsh = MinHashLSH(threshold=self.cfg.threshold, num_perm=self.cfg.num_perm, params=self._bands)
            hashes: dict[str, MinHash] = {}
            for i in group:
                text = traces[i][0]
                m = MinHash(num_perm=self.cfg.num_perm, seed=1, permutations=permutations, scheme=scheme)
                m.update_batch(s.encode() for s in _shingles(normalize(text), self.cfg.shingle))
                # LSH finds candidates; the estimate itself decides (LSH admits some below the threshold).
                close = [c for c in lsh.query(m) if hashes[c].jaccard(m) >= self.cfg.threshold]
                if close:
                    j = min(int(c) for c in close)
                    found[i] = f"duplicate (near): Jaccard {hashes[str(j)].jaccard(m):.2f} with trace {j} of this problem"
                else:
                    lsh.insert(str(i), m)
                    hashes[str(i)] = m
        return found


def _shingles(text: str, n: int) -> set[str]:
    return {text[i : i + n] for i in range(max(len(text) - n + 1, 1))}


def earlier_rounds(out_dir: str, round_: int) -> list[str]:
    """Round dirs of the same run before `round_` that have a manifest."""
    from selfplay.storage import MANIFEST, RoundStorage

    dirs = [f"{out_dir.rstrip('/')}/round-{j}" for j in range(round_)]
    return [d for d in dirs if RoundStorage(d).exists(MANIFEST)]


# ---- decontamination ----------------------------------------------------------------------------


class Decontaminator:
    """The benchmarks' n-grams, and the check of one problem against them."""

    def __init__(self, cfg: DecontamConfig):
        self.cfg = cfg
        self.grams: dict[int, str] = {}
        """hash of an n-gram -> the benchmark it came from."""
        for spec in cfg.benchmarks:
            path = Path(spec).expanduser()
            if not path.exists():
                raise ValueError(f"decontam.benchmarks: {spec} does not exist")
            for text in _benchmark_texts(path):
                for gram in _ngrams(text, cfg.ngram):
                    self.grams.setdefault(hash(gram), spec)

    def check(self, question: str) -> dict[str, Any] | None:
        """What matched (benchmark and n-gram), or None for a clean question."""
        for gram in _ngrams(question, self.cfg.ngram):
            hit = self.grams.get(hash(gram))
            if hit is not None:
                return {"benchmark": hit, "ngram": gram}
        return None


def _ngrams(text: str, n: int) -> Iterator[str]:
    words = _WORD.findall(text.lower())
    if 0 < len(words) < n:  # a text shorter than n words is one n-gram, whole (as GPT-3's filter did)
        yield " ".join(words)
    for i in range(len(words) - n + 1):
        yield " ".join(words[i : i + n])


def _benchmark_texts(path: Path) -> Iterator[str]:
    if path.is_dir() and any((path / name).exists() for name in ("dataset_info.json", "state.json", "dataset_dict.json")):
        from datasets import Dataset, load_from_disk

        data = load_from_disk(str(path))
        for split in [data] if isinstance(data, Dataset) else data.values():
            for row in split:
                yield from _strings(row)
        return
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if f.suffix == ".parquet":
            import pyarrow.parquet as pq

            for row in pq.read_table(f).to_pylist():
                yield from _strings(row)
        elif f.suffix == ".jsonl":
            for line in f.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    yield from _strings(json.loads(line))
        elif f.suffix == ".json":
            data = json.loads(f.read_text(encoding="utf-8"))
            for row in data if isinstance(data, list) else [data]:
                yield from _strings(row)
        elif not path.is_dir():
            raise ValueError(f"decontam.benchmarks: {f} is not .jsonl, .json or .parquet")


def _strings(value: Any) -> Iterator[str]:
    """Every string in a benchmark row (question, solution, answer, ... whatever its columns)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


DECONTAMINATED = "decontaminated.jsonl"
"""The problems decontamination dropped, one JSON line each, rewritten whole by every run."""


def write_decontaminated(round_dir: str, rows: list[dict[str, Any]]) -> None:
    from selfplay.storage import RoundStorage

    unique = {r["problem_id"]: r for r in rows}
    data = b"".join(orjson.dumps(unique[k], option=orjson.OPT_SORT_KEYS) + b"\n" for k in sorted(unique))
    storage = RoundStorage(round_dir)
    if data or storage.exists(DECONTAMINATED):
        storage.put(DECONTAMINATED, data)


def read_decontaminated(round_dir: str) -> list[dict[str, Any]]:
    from selfplay.storage import RoundStorage

    storage = RoundStorage(round_dir)
    if not storage.exists(DECONTAMINATED):
        return []
    return [orjson.loads(line) for line in storage.get(DECONTAMINATED).splitlines() if line.strip()]


def hygiene_stats(round_dir: str) -> dict[str, Any]:
    """What dedup and decontamination removed, for stats.json (from the committed shards)."""
    from selfplay.shards import load_rows, read_manifest

    config = (read_manifest(round_dir).get("meta") or {}).get("config") or {}
    reasons = load_rows(round_dir, "rejected", ["reject_reason"])
    reasons = reasons.column(0).to_pylist() if reasons.num_columns else []
    decontam = config.get("decontam") or {}
    return {
        "dedup": {"exact": sum(r.startswith("duplicate (exact)") for r in reasons),
                  "near": sum(r.startswith("duplicate (near)") for r in reasons),
                  "threshold": (config.get("dedup") or {}).get("threshold")},
        "decontamination": {"dropped": len(read_decontaminated(round_dir)), "ngram": decontam.get("ngram"),
                            "benchmarks": decontam.get("benchmarks", [])},
    }
