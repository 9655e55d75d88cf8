"""The shard writer on an S3-compatible object store: a real moto server process on loopback,
reached through s3fs exactly as a cluster reaches its bucket (endpoint from AWS_ENDPOINT_URL)."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pytest

from selfplay.shards import ConfigChangedError, RoundWriter, ShardLimits
from selfplay.storage import load_rows, read_manifest, shard_paths, write_json

# The moto server and a fresh bucket per test: the `s3_endpoint` and `bucket` fixtures in
# tests/selfplay/conftest.py (distill's object-store test uses them too).

KINDS = {"sft": pa.schema([("id", pa.string()), ("problem_id", pa.string()), ("text", pa.string())]),
         "problems": pa.schema([("problem_id", pa.string()), ("samples", pa.int64()), ("verified", pa.int64())])}


def problem_rows(pid: str) -> dict[str, list[dict]]:
    return {"sft": [{"id": f"{pid}-t0", "problem_id": pid, "text": "<think>1+1=2</think>\nAnswer: 2"}],
            "problems": [{"problem_id": pid, "samples": 2, "verified": 1}]}


def test_round_trip_on_s3_commits_resumes_and_loads(bucket):
    fs, name = bucket
    round_dir = f"s3://{name}/runs/exp1/round-0"
    with RoundWriter(round_dir, KINDS, ShardLimits(max_rows=2)) as writer:
        writer.set_meta({"config_hash": "h1"})
        for i in range(3):
            writer.add(f"p{i}", problem_rows(f"p{i}"))
    assert read_manifest(round_dir)["problems_done"] == 3
    assert all(p.startswith(f"s3://{name}/runs/exp1/round-0/sft/") for p in shard_paths(round_dir, "sft"))

    # A shard PUT whose manifest update never happened (the writer was killed in between).
    orphan = f"{name}/runs/exp1/round-0/sft/part-00042-orphan.parquet"
    fs.pipe_file(orphan, b"not listed")
    with RoundWriter(round_dir, KINDS, verify_sha256=True) as writer:
        assert writer.done_problem_ids() == {"p0", "p1", "p2"}
        writer.set_meta({"config_hash": "h1"})
        writer.add("p3", problem_rows("p3"))
    assert not fs.exists(orphan)

    problems = load_rows(round_dir, "problems").column("problem_id").to_pylist()
    assert sorted(problems) == ["p0", "p1", "p2", "p3"]
    assert load_rows(round_dir, "sft", columns=["id"]).num_rows == 4
    write_json(f"{round_dir}/stats.json", {"accepted": 4})
    assert orjson.loads(fs.cat_file(f"{name}/runs/exp1/round-0/stats.json")) == {"accepted": 4}


def test_a_resume_under_another_config_is_refused_on_s3(bucket):
    fs, name = bucket
    round_dir = f"s3://{name}/runs/exp2/round-0"
    with RoundWriter(round_dir, KINDS) as writer:
        writer.set_meta({"config_hash": "h1"})
        writer.add("p0", problem_rows("p0"))
    with pytest.raises(ConfigChangedError):
        with RoundWriter(round_dir, KINDS) as writer:
            writer.set_meta({"config_hash": "h2"})
    assert load_rows(round_dir, "problems").num_rows == 1
