"""The shard writer on real Parquet files, a real fsspec memory:// store and real killed processes."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import fsspec
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selfplay.records import RowSchemaError
from selfplay.shards import ConfigChangedError, RoundWriter, ShardLimits
from selfplay.storage import RoundStateError, load_rows, read_manifest, shard_paths, write_json

REPO = Path(__file__).resolve().parents[2]
MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
KINDS = {
    "sft": pa.schema([("problem_id", pa.string()), ("k", pa.int64()), ("messages", MESSAGES),
                      ("model", pa.struct([("id", pa.string()), ("rev", pa.string())]))]),
    "rejected": pa.schema([("problem_id", pa.string()), ("reason", pa.string())]),
    "problems": pa.schema([("problem_id", pa.string()), ("status", pa.string()), ("samples", pa.int64()),
                           ("pass_rate", pa.float64())]),
}


def problem_rows(pid: str, n_sft: int = 1, text: str = "x") -> dict[str, list[dict]]:
    messages = [{"role": "user", "content": f"question {pid}"}, {"role": "assistant", "content": text}]
    return {
        "sft": [{"problem_id": pid, "k": k, "messages": messages, "model": {"id": "tiny", "rev": "abc"}} for k in range(n_sft)],
        "rejected": [{"problem_id": pid, "reason": "wrong answer"}],
        "problems": [{"problem_id": pid, "status": "done", "samples": n_sft + 1, "pass_rate": n_sft / (n_sft + 1)}],
    }


def listed(round_dir: str, kind: str) -> list[dict]:
    return [s for s in read_manifest(round_dir)["shards"] if s["kind"] == kind]


def shard_files(round_dir: Path, kind: str) -> set[str]:
    return {f"{kind}/{p.name}" for p in (round_dir / kind).iterdir()} if (round_dir / kind).exists() else set()


def test_shards_roll_by_rows_and_a_problem_is_never_split_across_commits(tmp_path):
    with RoundWriter(str(tmp_path), KINDS, ShardLimits(max_rows=5, max_bytes=1 << 30)) as writer:
        for i in range(23):
            writer.add(f"p{i}", problem_rows(f"p{i}", n_sft=2))
    sft = listed(str(tmp_path), "sft")
    assert all(s["rows"] <= 5 for s in sft)
    assert sum(s["rows"] for s in sft) == 46
    assert [s["path"].split("-")[1] for s in sft] == [f"{i:05d}" for i in range(len(sft))]
    commits = {s["commit"] for s in sft}
    problems = {s["commit"]: s["rows"] for s in listed(str(tmp_path), "problems")}
    assert set(problems) == commits  # each commit holds all kinds of the same problems
    assert {s["commit"]: s["rows"] for s in sft} == {c: 2 * n for c, n in problems.items()}


def test_one_problem_larger_than_max_rows_is_split_into_shards_of_one_commit(tmp_path):
    with RoundWriter(str(tmp_path), KINDS, ShardLimits(max_rows=4, max_bytes=1 << 30)) as writer:
        writer.add("big", problem_rows("big", n_sft=10))
    sft = listed(str(tmp_path), "sft")
    assert [s["rows"] for s in sft] == [4, 3, 3] or [s["rows"] for s in sft] == [4, 4, 2]
    assert len({s["commit"] for s in sft}) == 1
    assert load_rows(str(tmp_path), "sft").column("k").to_pylist() == list(range(10))


def test_shards_roll_by_bytes(tmp_path):
    max_bytes = 20_000
    with RoundWriter(str(tmp_path), KINDS, ShardLimits(max_rows=10_000, max_bytes=max_bytes)) as writer:
        for i in range(40):
            writer.add(f"p{i}", problem_rows(f"p{i}", text=f"{i}" * 2_000))
    sft = listed(str(tmp_path), "sft")
    assert len(sft) >= 40 * 2_000 // max_bytes
    assert load_rows(str(tmp_path), "sft").num_rows == 40
    assert load_rows(str(tmp_path), "problems").num_rows == 40


def test_manifest_lists_exactly_the_shards_on_disk_with_their_sha256(tmp_path):
    with RoundWriter(str(tmp_path), KINDS, ShardLimits(max_rows=3, max_bytes=1 << 30)) as writer:
        for i in range(10):
            writer.add(f"p{i}", problem_rows(f"p{i}"))
    manifest = read_manifest(str(tmp_path))
    for shard in manifest["shards"]:
        data = (tmp_path / shard["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == shard["sha256"]
        assert len(data) == shard["bytes"] and pq.read_metadata(tmp_path / shard["path"]).num_rows == shard["rows"]
    on_disk = set().union(*(shard_files(tmp_path, k) for k in ("sft", "rejected", "problems", "errors")))
    assert on_disk == {s["path"] for s in manifest["shards"]}
    assert manifest["problems_done"] == 10 and manifest["kinds"]["sft"]["rows"] == 10


def test_resume_skips_done_problems_and_removes_orphans(tmp_path):
    with RoundWriter(str(tmp_path), KINDS, ShardLimits(max_rows=100, max_bytes=1 << 30)) as writer:
        for i in range(4):
            writer.add(f"p{i}", problem_rows(f"p{i}"))
    # What a kill leaves: a shard written but never listed, and half-written temp files.
    orphan = tmp_path / "sft" / "part-00001-0123456789ab.parquet"
    pq.write_table(pa.table({"problem_id": ["ghost"]}), orphan)
    (tmp_path / "sft" / ".part-00001-aaaa.parquet.tmp-1234abcd").write_bytes(b"PAR1 half")
    (tmp_path / ".manifest.json.tmp-deadbeef").write_bytes(b"{")
    (tmp_path / "sft" / "NOTES.md").write_text("not ours: kept")
    writer = RoundWriter(str(tmp_path), KINDS, ShardLimits(max_rows=100, max_bytes=1 << 30))
    assert writer.done_problem_ids() == {"p0", "p1", "p2", "p3"}
    assert not orphan.exists() and not (tmp_path / ".manifest.json.tmp-deadbeef").exists()
    assert shard_files(tmp_path, "sft") == {s["path"] for s in listed(str(tmp_path), "sft")} | {"sft/NOTES.md"}
    with pytest.raises(ValueError, match="already committed"):
        writer.add("p2", problem_rows("p2"))
    writer.add("p4", problem_rows("p4"))
    writer.close()
    ids = load_rows(str(tmp_path), "problems").column("problem_id").to_pylist()
    assert sorted(ids) == ["p0", "p1", "p2", "p3", "p4"]
    assert "ghost" not in load_rows(str(tmp_path), "sft").column("problem_id").to_pylist()


def test_missing_or_corrupt_committed_shard_is_a_clear_error(tmp_path):
    with RoundWriter(str(tmp_path), KINDS, ShardLimits(max_rows=100, max_bytes=1 << 30)) as writer:
        writer.add("p0", problem_rows("p0"))
    shard = tmp_path / listed(str(tmp_path), "sft")[0]["path"]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes: only the sha256 check sees it
    shard.write_bytes(bytes(data))
    with pytest.raises(RoundStateError, match="sha256"):
        RoundWriter(str(tmp_path), KINDS, verify_sha256=True)
    shard.unlink()
    with pytest.raises(RoundStateError, match="missing"):
        RoundWriter(str(tmp_path), KINDS)


def test_resume_with_another_config_hash_is_refused_unless_allowed(tmp_path):
    with RoundWriter(str(tmp_path), KINDS) as writer:
        writer.set_meta({"config_hash": "aaa", "config": {"solver": "tiny"}, "verifiers": {"math": "1"}})
        writer.add("p0", problem_rows("p0"))
    with RoundWriter(str(tmp_path), KINDS) as writer:
        writer.set_meta({"config_hash": "aaa", "config": {"solver": "tiny"}, "verifiers": {"math": "1"}})
        with pytest.raises(ConfigChangedError, match="config_hash 'aaa'.*'bbb'.*allow_config_change"):
            writer.set_meta({"config_hash": "bbb"})
    with RoundWriter(str(tmp_path), KINDS, allow_config_change=True) as writer:
        writer.set_meta({"config_hash": "bbb"})
    manifest = read_manifest(str(tmp_path))
    assert manifest["meta"] == {"config_hash": "bbb"}
    assert manifest["meta_history"][0]["meta"]["config_hash"] == "aaa"


def test_sft_shards_load_together_with_datasets_and_nested_columns_round_trip(tmp_path):
    datasets = pytest.importorskip("datasets")
    added = []
    with RoundWriter(str(tmp_path), KINDS, ShardLimits(max_rows=3, max_bytes=1 << 30)) as writer:
        for i in range(8):
            rows = problem_rows(f"p{i}", n_sft=1 + i % 2)
            added += rows["sft"]
            writer.add(f"p{i}", rows)
    paths = shard_paths(str(tmp_path), "sft")
    assert len(paths) > 1
    dataset = datasets.load_dataset("parquet", data_files=paths, split="train", cache_dir=str(tmp_path / "hf"))
    assert dataset.to_list() == added
    assert dataset[0]["messages"][1] == {"role": "assistant", "content": "x"}


def test_errors_jsonl_keeps_each_bad_row_once_across_resumes(tmp_path):
    bad = [{"reason": "no 'task' field", "row": {"question": "2+2?"}}, {"reason": "5 MB completion", "problem_id": "p9"}]
    for run in range(2):
        with RoundWriter(str(tmp_path), KINDS) as writer:
            assert [writer.add_error(b) for b in bad] == [run == 0, run == 0]
            assert writer.add_error(bad[0]) is False
            writer.add(f"p{run}", problem_rows(f"p{run}"))
    lines = [orjson.loads(x) for x in (tmp_path / "errors.jsonl").read_bytes().splitlines()]
    assert sorted(lines, key=lambda e: e["reason"]) == sorted(bad, key=lambda e: e["reason"])
    # A kill after the manifest but before errors.jsonl: reopening rebuilds it from the shards.
    (tmp_path / "errors.jsonl").write_bytes(b"")
    RoundWriter(str(tmp_path), KINDS).close()
    assert len((tmp_path / "errors.jsonl").read_bytes().splitlines()) == 2
    with pytest.raises(ValueError, match="reason"):
        RoundWriter(str(tmp_path / "other"), KINDS).add_error({"row": 1})


def test_fixed_schema_errors_name_the_field(tmp_path):
    schema = pa.schema([pa.field("problem_id", pa.string(), nullable=False), pa.field("pass_rate", pa.float64())])
    writer = RoundWriter(str(tmp_path), {"problems": schema})
    with pytest.raises(RowSchemaError, match="'pass_rate'.*double"):
        writer.add("p0", {"problems": [{"problem_id": "p0", "pass_rate": "high"}]})
    with pytest.raises(RowSchemaError, match=r"unknown field\(s\) \['passrate'\]"):
        writer.add("p0", {"problems": [{"problem_id": "p0", "passrate": 0.5}]})
    messages = pa.schema([pa.field("problem_id", pa.string()), pa.field("messages", pa.list_(
        pa.struct([("role", pa.string()), ("content", pa.string())])))])
    with pytest.raises(RowSchemaError, match=r"'messages\[1\].name' is not in the schema"):
        RoundWriter(str(tmp_path / "m"), {"problems": messages}).add("p0", {"problems": [{"problem_id": "p0", "messages": [
            {"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "name": "solver"}]}]})
    with pytest.raises(ValueError, match="unknown kind"):
        writer.add("p0", {"problems": [{"problem_id": "p0"}], "sfft": [{}]})
    with pytest.raises(ValueError, match="exactly one row"):
        writer.add("p0", {"problems": []})
    writer.add("p0", {"problems": [{"problem_id": "p0"}]})  # nullable fields may be left out
    writer.close()
    assert load_rows(str(tmp_path), "problems").schema == schema
    assert writer.done_problem_ids() == {"p0"}
    with pytest.raises(RoundStateError, match="differs from the committed"):
        RoundWriter(str(tmp_path), {"problems": pa.schema([pa.field("problem_id", pa.large_string())])})


def test_a_row_that_is_not_a_mapping_is_a_schema_error_naming_its_kind(tmp_path):
    with RoundWriter(str(tmp_path), KINDS) as writer:
        with pytest.raises(RowSchemaError, match="kind 'problems', problem 'p0': row 0 is a str"):
            writer.add("p0", {"problems": ["p0"]})
        with pytest.raises(RowSchemaError, match="kind 'sft', problem 'p0': row 1 is a list"):
            writer.add("p0", {"sft": [problem_rows("p0")["sft"][0], ["x"]], "problems": [{"problem_id": "p0"}]})
        writer.add("p0", problem_rows("p0"))  # nothing of the refused calls was buffered
    assert load_rows(str(tmp_path), "problems").column("problem_id").to_pylist() == ["p0"]


def test_every_kind_needs_its_schema(tmp_path):
    with pytest.raises(TypeError, match="kind 'sft': schema must be a pyarrow.Schema"):
        RoundWriter(str(tmp_path), {**KINDS, "sft": None})


def test_memory_uri_end_to_end():
    round_dir = f"memory://selfplay-test-{uuid.uuid4().hex}/round-0"
    fs, root = fsspec.core.url_to_fs(round_dir)
    try:
        with RoundWriter(round_dir, KINDS, ShardLimits(max_rows=2)) as writer:
            writer.set_meta({"config_hash": "m"})
            for i in range(5):
                writer.add(f"p{i}", problem_rows(f"p{i}"))
            writer.add_error({"reason": "bad row"})
        fs.pipe_file(f"{root}/sft/part-00099-orphan.parquet", b"junk")
        write_json(f"{round_dir}/stats.json", {"accepted": 5, "rate": 1.0})
        with RoundWriter(round_dir, KINDS, verify_sha256=True) as writer:
            assert writer.done_problem_ids() == {f"p{i}" for i in range(5)}
            writer.add("p5", problem_rows("p5"))
        assert not fs.exists(f"{root}/sft/part-00099-orphan.parquet")
        assert load_rows(round_dir, "problems").num_rows == 6
        assert all(p.startswith("memory://") for p in shard_paths(round_dir, "sft"))
        assert orjson.loads(fs.cat_file(f"{root}/stats.json")) == {"accepted": 5, "rate": 1.0}
        assert fs.cat_file(f"{root}/errors.jsonl") == b'{"reason":"bad row"}\n'
    finally:
        fs.rm(root.rsplit("/", 1)[0], recursive=True)


def test_file_uri_and_plain_path_name_the_same_round(tmp_path):
    with RoundWriter(f"file://{tmp_path}", KINDS) as writer:
        writer.add("p0", problem_rows("p0"))
    assert RoundWriter(str(tmp_path), KINDS).done_problem_ids() == {"p0"}


def test_second_writer_on_a_local_round_is_refused_while_the_first_is_open(tmp_path):
    first = RoundWriter(str(tmp_path), KINDS)
    with pytest.raises(RoundStateError, match="another RoundWriter"):
        RoundWriter(str(tmp_path), KINDS)
    first.close()
    RoundWriter(str(tmp_path), KINDS).close()


def test_empty_round_still_gets_a_manifest_with_meta_and_age_limit_commits(tmp_path):
    with RoundWriter(str(tmp_path / "empty"), KINDS) as writer:
        writer.set_meta({"config_hash": "h", "models": {"solver": "tiny@abc"}})
    assert read_manifest(str(tmp_path / "empty"))["meta"]["models"] == {"solver": "tiny@abc"}
    writer = RoundWriter(str(tmp_path / "aged"), KINDS, ShardLimits(max_age_s=0))
    writer.add("p0", problem_rows("p0"))
    assert writer.pending_problems == 0 and read_manifest(str(tmp_path / "aged"))["problems_done"] == 1
    writer.close()


CHILD = """
import sys
import pyarrow as pa
from selfplay.shards import RoundWriter, ShardLimits
round_dir, n = sys.argv[1], int(sys.argv[2])
kinds = {"sft": pa.schema([("problem_id", pa.string()), ("k", pa.int64()), ("text", pa.string())]),
         "problems": pa.schema([("problem_id", pa.string()), ("n_sft", pa.int64())])}
writer = RoundWriter(round_dir, kinds, ShardLimits(max_rows=7, max_bytes=1 << 20))
writer.set_meta({"config_hash": "kill-test"})
done = writer.done_problem_ids()
print("ready", len(done), flush=True)
for i in range(n):
    pid = f"p{i:04d}"
    if pid in done:
        continue
    if i % 5 == 0:
        writer.add_error({"reason": "odd input", "problem_id": pid})
    sft = [{"problem_id": pid, "k": k, "text": "y" * (i % 40)} for k in range(i % 4)]
    writer.add(pid, {"sft": sft, "problems": [{"problem_id": pid, "n_sft": i % 4}]})
    print(pid, flush=True)
writer.close()
"""


def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path):
    """Each child is killed after a random share of the problems it has left, counted in problems it
    reports done, not in seconds: on a fast machine a timed kill can land after the child finished."""
    n, rng = 400, random.Random(1234)
    round_dir = tmp_path / "round-0"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = 0
    for _ in range(5):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(round_dir), str(n)], cwd=REPO, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = child.stdout.readline()
        assert ready.startswith("ready"), child.stderr.read()
        left = n - int(ready.split()[1])
        for _ in range(max(1, int(left * rng.uniform(0.05, 0.5)))):
            child.stdout.readline()
        child.send_signal(signal.SIGKILL)
        killed += child.wait() == -signal.SIGKILL  # 0 when it finished before the kill
    final = subprocess.run([sys.executable, "-c", CHILD, str(round_dir), str(n)], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert killed >= 4  # the kills really landed mid-run

    ids = load_rows(str(round_dir), "problems").column("problem_id").to_pylist()
    assert len(ids) == len(set(ids)) and set(ids) == {f"p{i:04d}" for i in range(n)}
    sft = load_rows(str(round_dir), "sft").to_pylist()
    assert len({(r["problem_id"], r["k"]) for r in sft}) == len(sft)
    per_problem = Counter(r["problem_id"] for r in sft)
    assert all(per_problem[f"p{i:04d}"] == i % 4 for i in range(n))
    errors = (round_dir / "errors.jsonl").read_bytes().splitlines()
    assert len(errors) == len(set(errors)) == n // 5
    manifest = read_manifest(str(round_dir))
    listed_paths = {s["path"] for s in manifest["shards"]}
    on_disk = shard_files(round_dir, "sft") | shard_files(round_dir, "problems") | shard_files(round_dir, "errors")
    assert on_disk == listed_paths
    for shard in manifest["shards"]:
        assert hashlib.sha256((round_dir / shard["path"]).read_bytes()).hexdigest() == shard["sha256"]
