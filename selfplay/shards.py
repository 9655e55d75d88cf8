"""The shard writer: rows of finished problems become Parquet shards, and a kill never loses or
duplicates a committed row.

A round directory (a local path or any fsspec URI: `s3://bucket/run/round-0`, `memory://...`)
holds one folder per kind of row and a manifest:

    round-<k>/sft/part-00000-<sha>.parquet      accepted traces
    round-<k>/rejected/...  critic/...          other kinds, as the pipeline names them
    round-<k>/problems/...                      one row per finished problem (resume reads it)
    round-<k>/errors/...  errors.jsonl          bad input rows and why
    round-<k>/manifest.json                     the commit point
    round-<k>/stats.json                        written by the pipeline with `write_json`

`RoundWriter.add(problem_id, rows)` buffers all rows of one finished problem across kinds.
A commit writes the buffered rows of each kind as new shards (each written whole: temp file +
rename locally, one PUT on object stores), then rewrites manifest.json the same way. A shard
not listed in the manifest does not exist, so a problem's rows of every kind appear together or
not at all. Reopening a round dir deletes unlisted shards and skips `done_problem_ids()`.

One writer per round dir: locally a lock file enforces it; on object stores it is the caller's job.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from collections.abc import Callable, Mapping
from typing import Any

import fsspec
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
ERRORS_JSONL = "errors.jsonl"
MANIFEST_FORMAT = 1
PROBLEMS_KIND = "problems"
"""The kind with one row per finished problem; its `problem_id` column is the resume record."""
ERRORS_KIND = "errors"
"""Reserved kind the writer keeps bad-input rows in; errors.jsonl is rebuilt from it."""
ERROR_SCHEMA = pa.schema(
    [
        pa.field("problem_id", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("row", pa.string(), nullable=False),  # the whole error row as JSON
    ]
)
CONFIG_HASH_KEY = "config_hash"
"""The meta key compared on resume: a different hash means the round was made by another config."""

_KIND_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_TEMP_MARK = ".tmp-"
_LOCK_FILE = ".writer.lock"


class RoundStateError(RuntimeError):
    """The round dir on storage disagrees with its manifest, or another writer holds it."""


class ConfigChangedError(RuntimeError):
    """A resumed round was started with a different config hash."""


class RowSchemaError(ValueError):
    """A row does not fit its kind's schema; the message names the kind, problem and field."""


@dataclass(frozen=True)
class ShardLimits:
    """When buffered rows become a commit. Buffers never grow past these, so memory stays
    bounded however long the run."""

    max_rows: int = 10_000
    """Most rows in one shard of any kind; a commit happens before a kind would pass it."""
    max_bytes: int = 128 * 2**20
    """Most buffered Arrow bytes across kinds (Parquet shards come out smaller, compressed)."""
    max_age_s: float = 120.0
    """Commit on `add` once the oldest buffered problem waited this long, so a kill loses at
    most this much finished work even when rows come slowly. 0 commits every problem."""

    def __post_init__(self):
        if self.max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {self.max_rows}")
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {self.max_bytes}")
        if self.max_age_s < 0:
            raise ValueError(f"max_age_s must be >= 0, got {self.max_age_s}")


class RoundStorage:
    """A round dir on a local disk or an object store, with whole-object writes only."""

    def __init__(self, round_dir: str):
        self.fs, root = fsspec.core.url_to_fs(str(round_dir))
        self.root = root.rstrip("/") or "/"
        self.local = isinstance(self.fs, LocalFileSystem)

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def uri(self, rel: str) -> str:
        """What a user passes to pyarrow/datasets: a plain path locally, a URI elsewhere."""
        return self.path(rel) if self.local else self.fs.unstrip_protocol(self.path(rel))

    def put(self, rel: str, data: bytes) -> None:
        """Write `data` so readers see the old object or the whole new one, never a part."""
        path = self.path(rel)
        if not self.local:
            self.fs.pipe_file(path, data)  # one PUT: object stores publish it whole
            return
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        temp = os.path.join(folder, f".{os.path.basename(path)}{_TEMP_MARK}{uuid.uuid4().hex[:8]}")
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # data on disk before the name points at it
        os.replace(temp, path)
        _fsync_dir(folder)

    def get(self, rel: str) -> bytes:
        return self.fs.cat_file(self.path(rel))

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.path(rel))

    def files(self) -> dict[str, int]:
        """Every file under the round dir: relative path -> size in bytes."""
        if not self.fs.exists(self.root):
            return {}
        found = self.fs.find(self.root, detail=True)
        prefix = self.root.rstrip("/") + "/"
        return {
            p[len(prefix):]: int(info.get("size") or 0)
            for p, info in found.items()
            if p.startswith(prefix) and info.get("type", "file") == "file"
        }

    def remove(self, rel: str) -> None:
        self.fs.rm_file(self.path(rel))

    def read_table(self, rel: str, columns: list[str] | None = None) -> pa.Table:
        return self._read(rel, lambda f: pq.read_table(f, columns=columns))

    def read_schema(self, rel: str) -> pa.Schema:
        return self._read(rel, pq.read_schema)

    def _read(self, rel: str, read):
        try:
            with self.fs.open(self.path(rel), "rb") as f:
                return read(f)
        except (OSError, pa.ArrowException) as e:
            raise RoundStateError(f"cannot read committed shard {self.uri(rel)}: {e}") from e


def _fsync_dir(folder: str) -> None:
    # The rename itself must survive a power cut, not only a kill.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _dumps(obj: Any, indent: bool = False) -> bytes:
    opts = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
    if indent:
        opts |= orjson.OPT_INDENT_2
    return orjson.dumps(obj, default=str, option=opts)


def write_json(round_dir: str, name: str, obj: Any) -> None:
    """Write `obj` as `<round_dir>/<name>` atomically (e.g. stats.json)."""
    RoundStorage(round_dir).put(name, _dumps(obj, indent=True) + b"\n")


def read_manifest(round_dir: str) -> dict[str, Any]:
    """The committed state of a round; an empty manifest when nothing was committed yet."""
    return _read_manifest(RoundStorage(round_dir))


def _read_manifest(storage: RoundStorage) -> dict[str, Any]:
    if not storage.exists(MANIFEST):
        return {"format": MANIFEST_FORMAT, "commits": 0, "meta": {}, "meta_history": [], "shards": []}
    try:
        manifest = orjson.loads(storage.get(MANIFEST))
    except orjson.JSONDecodeError as e:
        raise RoundStateError(f"{storage.uri(MANIFEST)} is not valid JSON: {e}") from e
    if manifest.get("format") != MANIFEST_FORMAT:
        raise RoundStateError(
            f"{storage.uri(MANIFEST)} has format {manifest.get('format')!r}; this writer reads {MANIFEST_FORMAT}"
        )
    return manifest


def shard_paths(round_dir: str, kind: str) -> list[str]:
    """Committed shards of `kind` in commit order, as paths/URIs for
    `datasets.load_dataset("parquet", data_files=...)` (a glob could see a killed run's orphans)."""
    storage = RoundStorage(round_dir)
    return [storage.uri(s["path"]) for s in _read_manifest(storage)["shards"] if s["kind"] == kind]


def load_rows(round_dir: str, kind: str, columns: list[str] | None = None) -> pa.Table:
    """All committed rows of `kind` as one table (empty, with no columns, if there are none)."""
    storage = RoundStorage(round_dir)
    rels = [s["path"] for s in _read_manifest(storage)["shards"] if s["kind"] == kind]
    if not rels:
        return pa.table({})
    return pa.concat_tables([storage.read_table(r, columns) for r in rels])


def rows_to_table(kind: str, rows: list[Mapping[str, Any]], schema: pa.Schema | None, problem_id: str = "") -> pa.Table:
    """Convert rows to Arrow; a bad value gets an error naming its kind, problem and field.

    With a schema, unknown fields (at any depth) and missing non-nullable ones are errors, since
    Arrow would drop or null them silently; without one, types are inferred from these rows."""
    where = f"kind {kind!r}" + (f", problem {problem_id!r}" if problem_id else "")
    names: dict[str, None] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise RowSchemaError(f"{where}: row {i} is a {type(row).__name__}, not a mapping")
        names.update(dict.fromkeys(row))
    if schema is None:
        return pa.Table.from_arrays(_columns(where, rows, [(n, None) for n in names]), names=[str(n) for n in names])
    known, checks = _schema_plan(schema)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise RowSchemaError(f"{where}: unknown field(s) {unknown}; the schema has {schema.names}")
    for name, nullable, check in checks:
        if not nullable and any(row.get(name) is None for row in rows):
            raise RowSchemaError(f"{where}: field {name!r} is required but missing or None")
        extra = check and next(filter(None, (check(row.get(name)) for row in rows)), None)
        if extra:
            raise RowSchemaError(f"{where}: {name + extra!r} is not in the schema ({name}: {schema.field(name).type})")
    try:
        return pa.Table.from_pylist(rows, schema=schema)  # one fast call; column by column to name a failure
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return pa.Table.from_arrays(_columns(where, rows, [(f.name, f.type) for f in schema]), schema=schema)


def _columns(where: str, rows: list[Mapping[str, Any]], columns: list[tuple[str, pa.DataType | None]]) -> list[pa.Array]:
    arrays = []
    for name, type_ in columns:
        try:
            arrays.append(pa.array([row.get(name) for row in rows], type=type_))
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:
            expected = f" (expected {type_})" if type_ is not None else ""
            raise RowSchemaError(f"{where}: field {name!r}{expected}: {e}") from e
    return arrays


_PLANS: dict[int, tuple[pa.Schema, frozenset, list]] = {}


def _schema_plan(schema: pa.Schema) -> tuple[frozenset, list[tuple[str, bool, Callable | None]]]:
    """Field names and the per-field checks a row needs, worked out once per schema (hashing
    Arrow types on every row would cost more than converting it)."""
    hit = _PLANS.get(id(schema))
    if hit is None or hit[0] is not schema:
        if len(_PLANS) > 256:
            _PLANS.clear()
        checks = [(f.name, f.nullable, _key_checker(f.type)) for f in schema]
        needed = [(name, nullable, check) for name, nullable, check in checks if not nullable or check]
        hit = _PLANS[id(schema)] = (schema, frozenset(schema.names), needed)
    return hit[1], hit[2]


@functools.lru_cache(maxsize=256)
def _key_checker(t: pa.DataType) -> Callable[[Any], str | None] | None:
    """A function giving the path (".a[0].b") of the first dict key in a value that type `t`
    has no field for; None when `t` holds no struct, so there is nothing to check."""
    if pa.types.is_struct(t):
        children = {t.field(i).name: _key_checker(t.field(i).type) for i in range(t.num_fields)}

        def check_struct(value: Any) -> str | None:
            if not isinstance(value, Mapping):
                return None
            for key, item in value.items():
                if key not in children:
                    return f".{key}"
                found = children[key] and children[key](item)
                if found:
                    return f".{key}{found}"
            return None

        return check_struct
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        item_check = _key_checker(t.value_type)
        if item_check is None:
            return None

        def check_list(value: Any) -> str | None:
            if isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    found = item_check(item)
                    if found:
                        return f"[{i}]{found}"
            return None

        return check_list
    return None


def _empty_struct_field(schema: pa.Schema) -> str | None:
    def empty(t: pa.DataType) -> bool:
        if pa.types.is_struct(t):
            return t.num_fields == 0 or any(empty(t.field(i).type) for i in range(t.num_fields))
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return empty(t.value_type)
        return False

    return next((f.name for f in schema if empty(f.type)), None)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table.combine_chunks(), sink, compression="zstd")
    return sink.getvalue()


class RoundWriter:
    """Buffers finished problems and commits them as Parquet shards plus a manifest.

    `kinds` maps each kind of row to a fixed pyarrow schema, or None to infer it from the first
    commit and keep it for later shards. It must include "problems". Opening a round dir that
    already has a manifest resumes it: unlisted shards are deleted, listed ones checked, and
    `done_problem_ids()` says which problems to skip. Use as a context manager or call `close()`.
    """

    def __init__(
        self,
        round_dir: str,
        kinds: Mapping[str, pa.Schema | None],
        max_rows: int = ShardLimits.max_rows,
        max_bytes: int = ShardLimits.max_bytes,
        *,
        max_age_s: float = ShardLimits.max_age_s,
        verify_sha256: bool = False,
        allow_config_change: bool = False,
    ):
        self.limits = ShardLimits(max_rows, max_bytes, max_age_s)
        self.storage = RoundStorage(round_dir)
        self.allow_config_change = allow_config_change
        self._kinds = _checked_kinds(kinds)
        self._mutex = threading.RLock()
        self._lock_file = _hold_lock(self.storage) if self.storage.local else None
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

    @classmethod
    def open(cls, round_dir: str, kinds: Mapping[str, pa.Schema | None], *args: Any, **kwargs: Any) -> RoundWriter:
        """Same as the constructor (which resumes too); reads as intent where a run resumes."""
        return cls(round_dir, kinds, *args, **kwargs)

    # ---- resume -------------------------------------------------------------------------

    def _resume(self, verify_sha256: bool) -> None:
        self.manifest = _read_manifest(self.storage)
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
        self._schemas: dict[str, pa.Schema] = {}
        self._drafts: dict[str, pa.Schema] = {}
        for kind, schema in self._kinds.items():
            committed = self.storage.read_schema(first_shard[kind]) if kind in first_shard else None
            if schema is not None and committed is not None and not schema.equals(committed):
                raise RoundStateError(
                    f"kind {kind!r}: the schema passed differs from the committed shards' schema; "
                    f"shards of one kind must share a schema.\npassed:\n{schema}\ncommitted:\n{committed}"
                )
            if schema is not None or committed is not None:
                self._schemas[kind] = schema if schema is not None else committed
        self._done = {
            str(v) for v in _committed_column(self.storage, self.manifest, PROBLEMS_KIND, ["problem_id"]).to_pylist()
        }
        error_rows = _committed_column(self.storage, self.manifest, ERRORS_KIND, ["row"]).to_pylist()
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
            tables, drafts = self._convert(problem_id, rows)
            new_bytes = sum(t.nbytes for t in tables.values())
            if self._pending_ids and self._would_overflow(tables, new_bytes):
                self.commit()
                tables, drafts = self._convert(problem_id, rows)  # kinds inferred until now are fixed
            self._drafts.update(drafts)
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
        problem_rows = rows.get(PROBLEMS_KIND) or []
        if len(problem_rows) != 1:
            raise ValueError(f"problem {problem_id!r}: rows[{PROBLEMS_KIND!r}] must hold exactly one row, got {len(problem_rows)}")
        for kind, kind_rows in rows.items():
            for row in kind_rows:
                if isinstance(row, Mapping) and "problem_id" in row and row["problem_id"] != problem_id:
                    raise ValueError(f"problem {problem_id!r}: a {kind!r} row has problem_id {row['problem_id']!r}")
        if problem_rows[0].get("problem_id") != problem_id:
            raise ValueError(f"problem {problem_id!r}: its {PROBLEMS_KIND!r} row needs problem_id={problem_id!r}")

    def _convert(self, problem_id: str, rows: Mapping[str, list[dict[str, Any]]]):
        """Arrow tables of one problem's rows, and the inferred schemas widened to fit them."""
        tables, drafts = {}, {}
        for kind, kind_rows in rows.items():
            if not kind_rows:
                continue
            table = rows_to_table(kind, kind_rows, self._schemas.get(kind), problem_id)
            if kind not in self._schemas:
                drafts[kind] = _unified(kind, problem_id, self._drafts.get(kind), table.schema)
            tables[kind] = table
        return tables, drafts

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
                    entries += self._write_kind(kind, tables, self.manifest["commits"] + 1)
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
            for kind in list(self._drafts):
                self._schemas[kind] = _frozen(kind, self._drafts.pop(kind))
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

    def _write_kind(self, kind: str, tables: list[pa.Table], commit: int) -> list[dict[str, Any]]:
        schema = self._schemas.get(kind) or self._drafts[kind]
        empty = _empty_struct_field(schema)
        if empty is not None:
            raise RowSchemaError(
                f"kind {kind!r}: field {empty!r} is a struct with no fields (only empty dicts seen), "
                "which Parquet cannot store; pass a schema for this kind (e.g. a map type)"
            )
        table = pa.concat_tables(tables, promote_options="permissive").select(schema.names).cast(schema)
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


def _committed_column(storage: RoundStorage, manifest: dict, kind: str, columns: list[str]) -> pa.Array:
    rels = [s["path"] for s in manifest["shards"] if s["kind"] == kind]
    if not rels:
        return pa.array([], pa.string())
    return pa.concat_tables([storage.read_table(r, columns) for r in rels]).column(0).combine_chunks()


def _checked_kinds(kinds: Mapping[str, pa.Schema | None]) -> dict[str, pa.Schema | None]:
    if PROBLEMS_KIND not in kinds:
        raise ValueError(f"kinds must include {PROBLEMS_KIND!r} (one row per finished problem; resume reads it)")
    if ERRORS_KIND in kinds:
        raise ValueError(f"{ERRORS_KIND!r} is the writer's own kind; record bad rows with add_error")
    for kind, schema in kinds.items():
        if not isinstance(kind, str) or not _KIND_NAME.match(kind):
            raise ValueError(f"kind names are folder names (letters, digits, _ . -), got {kind!r}")
        if schema is not None and not isinstance(schema, pa.Schema):
            raise TypeError(f"kind {kind!r}: schema must be a pyarrow.Schema or None, got {type(schema).__name__}")
    problems_schema = kinds[PROBLEMS_KIND]
    if problems_schema is not None and problems_schema.get_field_index("problem_id") < 0:
        raise ValueError(f"the {PROBLEMS_KIND!r} schema needs a 'problem_id' field")
    return {**kinds, ERRORS_KIND: ERROR_SCHEMA}


def _unified(kind: str, problem_id: str, draft: pa.Schema | None, new: pa.Schema) -> pa.Schema:
    if draft is None:
        return new
    try:
        return pa.unify_schemas([draft, new], promote_options="permissive")
    except (pa.ArrowException, TypeError) as e:
        clash = next(
            (f.name for f in new if draft.get_field_index(f.name) >= 0 and not _unifies(draft.field(f.name), f)),
            "?",
        )
        raise RowSchemaError(
            f"kind {kind!r}, problem {problem_id!r}: field {clash!r} has a type that does not fit earlier "
            f"rows ({e}); pass a schema for this kind"
        ) from e


def _frozen(kind: str, schema: pa.Schema) -> pa.Schema:
    untyped = [path for f in schema for path in _null_typed(f.name, f.type)]
    if untyped:
        log.warning(
            "kind %r: %s held only None/[] in the first commit, so the type is fixed as null and later "
            "values will be refused; pass a schema for this kind", kind, ", ".join(untyped)
        )
    return schema


def _null_typed(path: str, t: pa.DataType) -> list[str]:
    if pa.types.is_null(t):
        return [path]
    if pa.types.is_struct(t):
        return [p for i in range(t.num_fields) for p in _null_typed(f"{path}.{t.field(i).name}", t.field(i).type)]
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _null_typed(f"{path}[]", t.value_type)
    return []


def _unifies(a: pa.Field, b: pa.Field) -> bool:
    try:
        pa.unify_schemas([pa.schema([a]), pa.schema([b])], promote_options="permissive")
        return True
    except (pa.ArrowException, TypeError):
        return False


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
    return is_shard or (name.startswith(".") and _TEMP_MARK in name)


def _error_key(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _json_safe(obj: Mapping[str, Any]) -> dict[str, Any]:
    # Round-trip through JSON so what is stored is what a reader later sees (and compares).
    return orjson.loads(_dumps(dict(obj)))


def _hold_lock(storage: RoundStorage):
    import fcntl

    os.makedirs(storage.root, exist_ok=True)
    handle = open(storage.path(_LOCK_FILE), "a+b")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RoundStateError(f"another RoundWriter is writing {storage.root}; one writer per round dir") from None
    except OSError as e:  # e.g. a network filesystem without locks: go on, as on object stores
        log.warning("could not lock %s (%s); make sure only one writer uses it", storage.root, e)
    return handle
