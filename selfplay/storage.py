"""Files and directories written so that a reader, or a run resumed after a kill, never sees half
of one: on a local disk or on any fsspec store every node can reach (`s3://bucket/run`, `memory://`);
and a round's committed rows read back through its manifest (selfplay.shards writes them).

A file is written whole: locally to a temp name beside it, fsync'd, then renamed over the target;
on an object store with one PUT, which publishes it whole. A directory (a model checkpoint, a copied
round) is built under `<name>.partial`, then swapped in complete. The swap moves the old one aside
to `<name>.old` first (a directory cannot be renamed onto a non-empty one); a kill between the two
renames leaves it there, and the next `partial_dir` for that target puts it back.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import shutil
import uuid
from pathlib import Path
from typing import Any

import fsspec
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

log = logging.getLogger(__name__)

TEMP_MARK = ".tmp-"
"""In the name of a file being written (`.<name>.tmp-<hex>`); one left by a kill is garbage."""
MANIFEST = "manifest.json"
"""A round's commit point: the shards that exist, with rows, bytes and sha256 each."""
MANIFEST_FORMAT = 1


class RoundStateError(RuntimeError):
    """The round dir on storage disagrees with its manifest, or another writer holds it."""


class RoundStorage:
    """A directory on a local disk or an object store (a round dir, mostly), written only with
    whole-file writes. Paths it takes and gives are relative to the directory."""

    def __init__(self, root: str | Path):
        self.fs, path = fsspec.core.url_to_fs(str(root))
        self.root = path.rstrip("/") or "/"
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
        temp = os.path.join(folder, f".{os.path.basename(path)}{TEMP_MARK}{uuid.uuid4().hex[:8]}")
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # data on disk before the name points at it
        os.replace(temp, path)
        _fsync_dir(folder)

    def get(self, rel: str) -> bytes:
        return self.fs.cat_file(self.path(rel))

    def open(self, rel: str, mode: str = "rb"):
        return self.fs.open(self.path(rel), mode)

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.path(rel))

    def files(self) -> dict[str, int]:
        """Every file under the directory: relative path -> size in bytes."""
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

    def lock(self, rel: str):
        """Hold an exclusive lock on the local file `rel` until the returned handle is closed;
        BlockingIOError if another process holds it. None on object stores, which have no locks."""
        if not self.local:
            return None
        import fcntl

        os.makedirs(self.root, exist_ok=True)
        handle = open(self.path(rel), "a+b")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise
        except OSError as e:  # e.g. a network filesystem without locks: go on, as on object stores
            log.warning("could not lock %s (%s); make sure only one writer uses it", self.root, e)
        return handle


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


def write_file(target: str | Path, data: bytes) -> None:
    """Write `data` as the file `target` (a path or URI) whole: the old file or the new one,
    never a part, at every moment."""
    folder, name = posixpath.split(str(target).rstrip("/"))
    RoundStorage(folder or ".").put(name, data)


def write_json(target: str | Path, obj: Any) -> None:
    """Write `obj` as indented JSON with sorted keys and a final newline (reports, stats.json,
    flywheel.json), whole as `write_file` does."""
    write_file(target, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


# ---- a round's committed rows ------------------------------------------------------------------


def read_manifest(round_dir: str) -> dict[str, Any]:
    """The committed state of a round; an empty manifest when nothing was committed yet."""
    storage = RoundStorage(round_dir)
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
    return [storage.uri(s["path"]) for s in read_manifest(round_dir)["shards"] if s["kind"] == kind]


def load_rows(round_dir: str, kind: str, columns: list[str] | None = None, manifest: dict | None = None) -> pa.Table:
    """All committed rows of `kind` as one table (empty, with no columns, if there are none);
    `manifest` saves reading it again where the caller has it."""
    storage = RoundStorage(round_dir)
    shards = (manifest or read_manifest(round_dir))["shards"]
    tables = [read_shard(storage, s["path"], lambda f: pq.read_table(f, columns=columns)) for s in shards if s["kind"] == kind]
    return pa.concat_tables(tables) if tables else pa.table({})


def read_shard(storage: RoundStorage, rel: str, read):
    """`read` (pq.read_table, pq.read_schema, ...) applied to a committed shard."""
    try:
        with storage.open(rel) as f:
            return read(f)
    except (OSError, pa.ArrowException) as e:
        raise RoundStateError(f"cannot read committed shard {storage.uri(rel)}: {e}") from e


# ---- whole directories --------------------------------------------------------------------------


def _aside(target: Path) -> Path:
    return target.with_name(target.name + ".old")


def partial_dir(target: Path) -> Path:
    """An empty-to-be path next to `target` to build it in (a stale one is removed; an old
    directory a killed swap left aside is put back first)."""
    old = _aside(target)
    if old.exists() and not target.exists():
        old.rename(target)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    return partial


def swap_in(partial: Path, target: Path) -> None:
    """Replace `target` with the finished `partial`: at every moment one complete directory exists,
    at `target` or (between the two renames) at its `.old` name."""
    old = _aside(target)
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    partial.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def copy_dir(source: Path, target: Path, ignore=None) -> Path:
    """Copy `source` whole into `target` (`ignore` as in shutil.copytree)."""
    partial = copy_partial(source, target, ignore)
    swap_in(partial, target)
    return target


def copy_partial(source: Path, target: Path, ignore=None) -> Path:
    """A copy of `source` under `target`'s partial name, not yet swapped in."""
    partial = partial_dir(target)
    shutil.copytree(source, partial, ignore=ignore)
    return partial
