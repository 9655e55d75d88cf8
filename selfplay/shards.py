"""The shard writer: rows of finished problems become Parquet shards, and a kill never loses or
duplicates a committed row.

A round directory (a local path or any fsspec URI: `s3://bucket/run/round-0`, `memory://...`)
holds one folder per kind of row and a manifest:

    round-<k>/sft/part-00000-<sha>.parquet      accepted traces
    round-<k>/rejected/...  critic/...          other kinds, as the pipeline names them
    round-<k>/problems/...                      one row per finished problem (resume reads it)
    round-<k>/errors/...  errors.jsonl          bad input rows and why
    round-<k>/manifest.json                     the commit point
    round-<k>/stats.json                        written by the pipeline (selfplay.storage.write_json)

Each kind has a fixed schema (selfplay.records has the pipeline's). `RoundWriter.add(problem_id,
rows)` buffers all rows of one finished problem across kinds. A commit writes the buffered rows of
each kind as new shards (each written whole, selfplay.storage), then rewrites manifest.json the same
way. A shard not listed in the manifest does not exist, so a problem's rows of every kind appear
together or not at all. Reopening a round dir deletes unlisted shards and skips `done_problem_ids()`.

One writer per round dir: locally a lock file enforces it; on object stores it is the caller's job.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from selfplay.records import FixedSchema, RowSchemaError
from selfplay.storage import (  # the readers are re-exported: users load rows as selfplay.shards.load_rows
    MANIFEST, TEMP_MARK, RoundStateError, RoundStorage, load_rows, read_manifest, read_shard, shard_paths,
)

log = logging.getLogger(__name__)

ERRORS_JSONL = "errors.jsonl"
PROBLEMS_KIND = "problems"
"""The kind with one row per finished problem; its `problem_id` column is the resume record."""
ERRORS_KIND = "errors"
"""Reserved kind the writer keeps bad-input rows in; errors.jsonl is rebuilt from it."""
ERROR_SCHEMA = pa.schema([pa.field("problem_id", pa.string()), pa.field("reason", pa.string(), nullable=False),
                          pa.field("row", pa.string(), nullable=False)])
"""`errors/` rows: `row` is the whole error row as JSON (the line errors.jsonl holds)."""
CONFIG_HASH_KEY = "config_hash"
"""The meta key compared on resume: a different hash means the round was made by another config."""

_KIND_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_LOCK_FILE = ".writer.lock"


class ConfigChangedError(RuntimeError):
    """A resumed round was started with a different config hash."""


@dataclass(frozen=True)
class ShardLimits:
    """When buffered rows become a commit. Buffers never grow past these, so memory stays
    bounded however long the run."""

    max_rows: int = 10_000
    """Most rows in one shard of any kind; a commit happens before a kind would pass it."""
    max_bytes: int = 128 * 2**20
    """Most buffered Arrow bytes across kinds (Parquet shards come out smaller, compressed)."""
    max_age_s: float = 30.0
    """Commit on `add` once the oldest buffered problem waited this long, so a kill loses at
    most this much finished work even when rows come slowly. 0 commits every problem."""

    def __post_init__(self):
        if self.max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {self.max_rows}")
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {self.max_bytes}")
        if self.max_age_s < 0:
            raise ValueError(f"max_age_s must be >= 0, got {self.max_age_s}")


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table.combine_chunks(), sink, compression="zstd")
    return sink.getvalue()


# ---- the writer -------------------------------------------------------------------------------


class RoundWriter:
    """Buffers finished problems and commits them as Parquet shards plus a manifest.

    `kinds` maps each kind of row to its fixed pyarrow schema and must include "problems".
    Opening a round dir that already has a manifest resumes it: unlisted shards are deleted, listed
    ones checked, and `done_problem_ids()` says which problems to skip. Use as a context manager or
    call `close()`.
    """

    def __init__(self, round_dir: str, kinds: Mapping[str, pa.Schema], limits: ShardLimits = ShardLimits(), *,
                 verify_sha256: bool = False, allow_config_change: bool = False):
        self.limits = limits
        self.round_dir = round_dir
        self.storage = RoundStorage(round_dir)
        self.allow_config_change = allow_config_change
        self._kinds = {kind: FixedSchema(schema) for kind, schema in _checked_kinds(kinds).items()}
        self._mutex = threading.RLock()
        try:
            self._lock_file = self.storage.lock(_LOCK_FILE)
        except BlockingIOError:
            raise RoundStateError(f"another RoundWriter is writing {self.storage.root}; one writer per round dir") from None
        try:
            self._resume(verify_sha256)
        except BaseException:
            self._release_lock()
            raise
        self._pending: dict[str, list[pa.Table]] = {k: [] for k in self._kinds}
        self._pending_rows = dict.fromkeys(self._kinds, 0)
        self._pending_ids: dict[str, None] = {}
        self._pending_error_keys: dict[str, bytes] = {}
        self._pending_bytes = 0
        self._oldest: float | None = None
        self._meta_dirty = False
        self._closed = False

    # ---- resume -------------------------------------------------------------------------

    def _resume(self, verify_sha256: bool) -> None:
        self.manifest = read_manifest(self.round_dir)
        listed = {s["path"]: s for s in self.manifest["shards"]}
        on_storage = self.storage.files()
        self._check_listed(listed, on_storage, verify_sha256)
        for rel in on_storage:
            if rel not in listed and _is_ours(rel):
                log.info("removing %s: not in the manifest (left by a killed run)", self.storage.uri(rel))
                self.storage.remove(rel)
        self._shard_count: dict[str, int] = {}
        first_shard: dict[str, str] = {}
        for s in self.manifest["shards"]:
            self._shard_count[s["kind"]] = self._shard_count.get(s["kind"], 0) + 1
            first_shard.setdefault(s["kind"], s["path"])
        for kind, shape in self._kinds.items():
            committed = read_shard(self.storage, first_shard[kind], pq.read_schema) if kind in first_shard else None
            if committed is not None and not shape.schema.equals(committed):
                raise RoundStateError(
                    f"kind {kind!r}: the schema passed differs from the committed shards' schema; "
                    f"shards of one kind must share a schema.\npassed:\n{shape.schema}\ncommitted:\n{committed}"
                )
        problems = load_rows(self.round_dir, PROBLEMS_KIND, ["problem_id"], self.manifest)
        self._done = {str(v) for v in problems.column(0).to_pylist()} if problems.num_columns else set()
        errors = load_rows(self.round_dir, ERRORS_KIND, ["row"], self.manifest)
        error_rows = errors.column(0).to_pylist() if errors.num_columns else []
        self._error_keys = {_error_key(r.encode()) for r in error_rows}
        self._errors_jsonl = b"".join(r.encode() + b"\n" for r in error_rows)
        if error_rows and (not self.storage.exists(ERRORS_JSONL) or self.storage.get(ERRORS_JSONL) != self._errors_jsonl):
            self.storage.put(ERRORS_JSONL, self._errors_jsonl)  # a kill after the manifest left it stale

    def _check_listed(self, listed: dict[str, dict], on_storage: dict[str, int], verify_sha256: bool) -> None:
        for rel, shard in listed.items():
            where = self.storage.uri(rel)
            if rel not in on_storage:
                raise RoundStateError(f"{where} is listed in the manifest but missing from storage")
            if on_storage[rel] != shard["bytes"]:
                raise RoundStateError(f"{where} has {on_storage[rel]} bytes; the manifest says {shard['bytes']}")
            if verify_sha256 and hashlib.sha256(self.storage.get(rel)).hexdigest() != shard["sha256"]:
                raise RoundStateError(f"{where} does not match the sha256 in the manifest")

    def done_problem_ids(self) -> set[str]:
        """Problems whose rows are committed: a resumed run skips exactly these."""
        with self._mutex:
            return set(self._done)

    @property
    def pending_problems(self) -> int:
        """Problems buffered but not yet committed (what a kill now would cost)."""
        return len(self._pending_ids)

    # ---- buffering ----------------------------------------------------------------------

    def set_meta(self, meta: Mapping[str, Any]) -> None:
        """Record the run's resolved config, its `config_hash`, model identities and verifier
        versions in manifest.json (written with the next commit)."""
        with self._mutex:
            old = self.manifest.get("meta") or {}
            old_hash, new_hash = old.get(CONFIG_HASH_KEY), meta.get(CONFIG_HASH_KEY)
            if self.manifest["shards"] and old_hash is not None and old_hash != new_hash:
                if not self.allow_config_change:
                    raise ConfigChangedError(
                        f"{self.storage.uri(MANIFEST)} was made with {CONFIG_HASH_KEY} {old_hash!r}, "
                        f"this run has {new_hash!r}: resuming would mix rows of two configs in one round. "
                        "Use a new output dir, or pass allow_config_change=True to resume anyway."
                    )
                history = self.manifest.setdefault("meta_history", [])
                history.append({"meta": old, "until_commit": self.manifest["commits"]})
            self.manifest["meta"] = _json_safe(meta)
            self._meta_dirty = True

    def add(self, problem_id: str, rows: Mapping[str, list[dict[str, Any]]]) -> None:
        """Buffer every row of one finished problem; they are committed together."""
        with self._mutex:
            self._check_open()
            self._check_problem(problem_id, rows)
            tables = {kind: self._kinds[kind].table(kind_rows, f"kind {kind!r}, problem {problem_id!r}")
                      for kind, kind_rows in rows.items() if kind_rows}
            new_bytes = sum(t.nbytes for t in tables.values())
            if self._pending_ids and self._would_overflow(tables, new_bytes):
                self.commit()
            for kind, table in tables.items():
                self._pending[kind].append(table)
                self._pending_rows[kind] += table.num_rows
            self._pending_bytes += new_bytes
            self._pending_ids[problem_id] = None
            self._after_add()

    def add_error(self, row: Mapping[str, Any]) -> bool:
        """Record a bad input row and why (`row["reason"]`). The same row twice, in this run or a
        resumed one, is kept once; returns False for such a duplicate."""
        with self._mutex:
            self._check_open()
            if not isinstance(row, Mapping) or not isinstance(row.get("reason"), str):
                raise ValueError(f"an error row is a mapping with a 'reason' string, got {row!r:.200}")
            line = _dumps(_json_safe(row))
            key = _error_key(line)
            if key in self._error_keys or key in self._pending_error_keys:
                return False
            pid = row.get("problem_id")
            record = {"problem_id": None if pid is None else str(pid), "reason": row["reason"], "row": line.decode()}
            table = pa.Table.from_pylist([record], schema=ERROR_SCHEMA)
            self._pending[ERRORS_KIND].append(table)
            self._pending_rows[ERRORS_KIND] += 1
            self._pending_error_keys[key] = line
            self._pending_bytes += table.nbytes
            self._after_add()
            return True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"RoundWriter for {self.storage.uri('')} is closed")

    def _check_problem(self, problem_id: str, rows: Mapping[str, list[dict[str, Any]]]) -> None:
        if not isinstance(problem_id, str) or not problem_id:
            raise ValueError(f"problem_id must be a non-empty string, got {problem_id!r}")
        if problem_id in self._done or problem_id in self._pending_ids:
            state = "committed" if problem_id in self._done else "buffered"
            raise ValueError(f"problem {problem_id!r} is already {state}; skip done_problem_ids() on resume")
        unknown = [k for k in rows if k not in self._kinds or k == ERRORS_KIND]
        if unknown:
            hint = " (use add_error for bad input rows)" if ERRORS_KIND in unknown else ""
            raise ValueError(f"unknown kind(s) {unknown}{hint}; this writer has {sorted(self._kinds)}")
        for kind, kind_rows in rows.items():
            for i, row in enumerate(kind_rows):
                if not isinstance(row, Mapping):
                    raise RowSchemaError(f"kind {kind!r}, problem {problem_id!r}: row {i} is a {type(row).__name__}, not a mapping")
                if "problem_id" in row and row["problem_id"] != problem_id:
                    raise ValueError(f"problem {problem_id!r}: a {kind!r} row has problem_id {row['problem_id']!r}")
        problem_rows = rows.get(PROBLEMS_KIND) or []
        if len(problem_rows) != 1:
            raise ValueError(f"problem {problem_id!r}: rows[{PROBLEMS_KIND!r}] must hold exactly one row, got {len(problem_rows)}")
        if problem_rows[0].get("problem_id") != problem_id:
            raise ValueError(f"problem {problem_id!r}: its {PROBLEMS_KIND!r} row needs problem_id={problem_id!r}")

    def _would_overflow(self, tables: dict[str, pa.Table], new_bytes: int) -> bool:
        if self._pending_bytes + new_bytes > self.limits.max_bytes:
            return True
        return any(self._pending_rows[k] + t.num_rows > self.limits.max_rows for k, t in tables.items())

    def _after_add(self) -> None:
        now = time.monotonic()
        self._oldest = self._oldest if self._oldest is not None else now
        full = max(self._pending_rows.values()) >= self.limits.max_rows
        if full or self._pending_bytes >= self.limits.max_bytes or now - self._oldest >= self.limits.max_age_s:
            self.commit()

    # ---- commit -------------------------------------------------------------------------

    def commit(self) -> None:
        """Write buffered rows as new shards, then the manifest (the commit point). If storage
        fails, the error propagates and the rows stay buffered for the next commit."""
        with self._mutex:
            has_rows = any(self._pending.values())
            if not has_rows and not self._meta_dirty and self.storage.exists(MANIFEST):
                return
            started = time.monotonic()
            entries = []
            for kind, tables in self._pending.items():
                if tables:
                    entries += self._write_kind(kind, pa.concat_tables(tables), self.manifest["commits"] + 1)
            manifest = dict(self.manifest, shards=self.manifest["shards"] + entries)
            manifest["commits"] = self.manifest["commits"] + (1 if has_rows else 0)
            manifest["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            manifest["problems_done"] = len(self._done) + len(self._pending_ids)
            manifest["kinds"] = _kind_totals(manifest["shards"])
            self.storage.put(MANIFEST, _dumps(manifest, indent=True) + b"\n")
            # Committed: everything below only mirrors storage in memory.
            self.manifest = manifest
            for entry in entries:
                self._shard_count[entry["kind"]] = self._shard_count.get(entry["kind"], 0) + 1
            self._done.update(self._pending_ids)
            new_errors = list(self._pending_error_keys.values())
            self._error_keys.update(self._pending_error_keys)
            if has_rows:
                log.info(
                    "commit %d: %d problems, %d shards, %.1f MB in %.2fs (%d problems done)",
                    manifest["commits"], len(self._pending_ids), len(entries),
                    sum(e["bytes"] for e in entries) / 1e6, time.monotonic() - started, len(self._done),
                )
            self._pending = {k: [] for k in self._kinds}
            self._pending_rows = dict.fromkeys(self._kinds, 0)
            self._pending_ids, self._pending_error_keys = {}, {}
            self._pending_bytes, self._oldest, self._meta_dirty = 0, None, False
            if new_errors:  # last: if this write fails, reopening rebuilds errors.jsonl from the shards
                self._errors_jsonl += b"".join(line + b"\n" for line in new_errors)
                self.storage.put(ERRORS_JSONL, self._errors_jsonl)

    def _write_kind(self, kind: str, table: pa.Table, commit: int) -> list[dict[str, Any]]:
        pieces = max(-(-table.num_rows // self.limits.max_rows), -(-table.nbytes // self.limits.max_bytes), 1)
        step = -(-table.num_rows // pieces)
        entries = []
        for start in range(0, table.num_rows, step):
            data = parquet_bytes(table.slice(start, step))
            sha = hashlib.sha256(data).hexdigest()
            index = self._shard_count.get(kind, 0) + len(entries)
            rel = f"{kind}/part-{index:05d}-{sha[:12]}.parquet"
            self.storage.put(rel, data)
            rows = min(step, table.num_rows - start)
            entries.append({"kind": kind, "path": rel, "rows": rows, "bytes": len(data), "sha256": sha, "commit": commit})
        return entries

    def close(self) -> None:
        """Commit what is buffered (and the manifest, even for an empty round); release the dir."""
        with self._mutex:
            if self._closed:
                return
            try:
                self.commit()
            finally:
                self._closed = True
                self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing drops the flock
            self._lock_file = None

    def __enter__(self) -> RoundWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        # Buffered problems are finished and validated: commit them even when the caller failed.
        self.close()


def _checked_kinds(kinds: Mapping[str, pa.Schema]) -> dict[str, pa.Schema]:
    if PROBLEMS_KIND not in kinds:
        raise ValueError(f"kinds must include {PROBLEMS_KIND!r} (one row per finished problem; resume reads it)")
    if ERRORS_KIND in kinds:
        raise ValueError(f"{ERRORS_KIND!r} is the writer's own kind; record bad rows with add_error")
    for kind, schema in kinds.items():
        if not isinstance(kind, str) or not _KIND_NAME.match(kind):
            raise ValueError(f"kind names are folder names (letters, digits, _ . -), got {kind!r}")
        if not isinstance(schema, pa.Schema):
            raise TypeError(f"kind {kind!r}: schema must be a pyarrow.Schema (selfplay.records has the rows' schemas), got {type(schema).__name__}")
    if kinds[PROBLEMS_KIND].get_field_index("problem_id") < 0:
        raise ValueError(f"the {PROBLEMS_KIND!r} schema needs a 'problem_id' field")
    return {**kinds, ERRORS_KIND: ERROR_SCHEMA}


def _kind_totals(shards: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    for s in shards:
        t = totals.setdefault(s["kind"], {"rows": 0, "shards": 0, "bytes": 0})
        t["rows"] += s["rows"]
        t["shards"] += 1
        t["bytes"] += s["bytes"]
    return totals


def _is_ours(rel: str) -> bool:
    """Files a writer makes and may leave behind when killed: shards and temp files."""
    name = rel.rsplit("/", 1)[-1]
    is_shard = "/" in rel and name.startswith("part-") and name.endswith(".parquet")
    return is_shard or (name.startswith(".") and TEMP_MARK in name)


def _error_key(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _dumps(obj: Any, indent: bool = False) -> bytes:
    # The manifest and error rows: orjson, keys sorted, so the same state gives the same bytes.
    opts = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
    if indent:
        opts |= orjson.OPT_INDENT_2
    return orjson.dumps(obj, default=str, option=opts)


def _json_safe(obj: Mapping[str, Any]) -> dict[str, Any]:
    # Round-trip through JSON so what is stored is what a reader later sees (and compares).
    return orjson.loads(_dumps(dict(obj)))
