"""A flywheel on a user's source: its held-out split by problem id, and each round's draw.

    record = split_source(train, heldout, share, folder)   # writes train.ids and heldout.ids
    draw(folder, k, problems, seed)                         # writes round-<k>.ids

The held-out problems are either another source (a test file, a dataset dir's test split) or a
share of the train source chosen by a hash of each problem id: the same problem is held out
whatever the seed, the row order or the rows around it. No problem is ever in both: a train row
whose problem is also held out stays out of train. Rounds and evaluations read the ids files
(source.only_ids); the record (sources, counts, rules, ids files) goes into flywheel.json.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfplay.problems import BadRow, SourceConfig, SourceError, check_source, iter_problems, read_ids
from selfplay.storage import write_file

TRAIN_IDS = "train.ids"
HELDOUT_IDS = "heldout.ids"
SHARE_RULE = "held out when int(sha256('heldout|' + problem_id)[:16], 16) < share * 2**64"
DRAW_RULE = "random.Random(seed + k).sample(sorted train ids, problems_per_round)"


def in_share(problem_id: str, share: float) -> bool:
    """Whether a problem falls in the held-out share (SHARE_RULE)."""
    return int(hashlib.sha256(f"heldout|{problem_id}".encode()).hexdigest()[:16], 16) < share * 2**64


@dataclass
class _Scan:
    """The problem ids of a whole source, in order, without repeats, and what it could not use."""

    ids: list[str] = field(default_factory=list)
    bad_rows: int = 0
    duplicates: int = 0

    def record(self, cfg: SourceConfig, ids_file: Path, problems: int) -> dict[str, Any]:
        return {"source": cfg.path if cfg.kind != "tasks" else "procedural", "kind": cfg.kind, "split": cfg.split,
                "problems": problems, "ids": str(ids_file), "bad_rows": self.bad_rows, "duplicates": self.duplicates}


def _scan(cfg: SourceConfig) -> _Scan:
    scan, seen = _Scan(), set()
    for item in iter_problems(cfg):
        if isinstance(item, BadRow):
            scan.bad_rows += 1
        elif item.id in seen:
            scan.duplicates += 1
        else:
            seen.add(item.id)
            scan.ids.append(item.id)
    return scan


def split_source(train: SourceConfig, heldout: SourceConfig | None, share: float, folder: Path) -> dict[str, Any]:
    """Split the problems of `train` from the held-out ones (those of `heldout`, or `share` of
    train's when it is None); writes <folder>/train.ids and heldout.ids, returns the record.
    SourceError when a file cannot be a source or either side is left without a problem."""
    check_source(train)  # both files' whole-file errors before either is read through
    if heldout is not None:
        check_source(heldout)
    scan = _scan(train)
    if heldout is None:
        held = [i for i in scan.ids if in_share(i, share)]
        held_scan, where = _Scan(held), f"heldout.share={share} of the {len(scan.ids)} problems of {train.path}"
    else:
        held_scan = _scan(heldout)
        held, where = held_scan.ids, f"{heldout.path} (split {heldout.split})"
    held_set = set(held)
    train_ids = [i for i in scan.ids if i not in held_set]
    if not held:
        raise SourceError(f"no held-out problem in {where}")
    if not train_ids:
        raise SourceError(f"no train problem left in {train.path}: every one of its problems is held out")
    write_file(folder / TRAIN_IDS, "".join(f"{i}\n" for i in sorted(train_ids)).encode())
    write_file(folder / HELDOUT_IDS, "".join(f"{i}\n" for i in sorted(held)).encode())
    record_train = scan.record(train, folder / TRAIN_IDS, len(train_ids))
    record_train["also_held_out"] = len(scan.ids) - len(train_ids) if heldout is not None else 0
    record_held = held_scan.record(heldout or train, folder / HELDOUT_IDS, len(held))
    record_held |= {"share": share, "rule": SHARE_RULE} if heldout is None else {"share": None, "rule": None}
    return {"train": record_train, "heldout": record_held}


def draw(folder: Path, k: int, problems: int, seed: int) -> Path:
    """Round k's train problems: `problems` of train.ids drawn with seed + k (DRAW_RULE), written
    once to <folder>/round-<k>.ids, which both arms then read."""
    path = folder / f"round-{k}.ids"
    if not path.exists():
        ids = sorted(read_ids(str(folder / TRAIN_IDS)))
        chosen = random.Random(seed + k).sample(ids, min(problems, len(ids)))
        write_file(path, "".join(f"{i}\n" for i in sorted(chosen)).encode())
    return path
