"""The shard writer on an S3-compatible object store: a real moto server process on loopback,
reached through s3fs exactly as a cluster reaches its bucket (endpoint from AWS_ENDPOINT_URL)."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import orjson
import pytest

from selfplay.shards import ConfigChangedError, RoundWriter, load_rows, read_manifest, shard_paths, write_json

s3fs = pytest.importorskip("s3fs", reason="s3fs (test extra) is needed for the object-store tests")
# Look for moto's server without importing it: importing it loads flask into the whole test
# session, and werkzeug's context proxies then break vLLM's start-up scan of loaded modules.
if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
    pytest.skip("moto[server] (test extra) is needed for the object-store tests", allow_module_level=True)

KINDS = {"sft": None, "problems": None}


def problem_rows(pid: str) -> dict[str, list[dict]]:
    return {"sft": [{"id": f"{pid}-t0", "problem_id": pid, "text": "<think>1+1=2</think>\nAnswer: 2"}],
            "problems": [{"problem_id": pid, "samples": 2, "verified": 1}]}


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on a free loopback port, for this module only."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto server did not start: {proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    """A fresh bucket; the endpoint and credentials come from the environment, as on a cluster."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3fs.S3FileSystem.clear_instance_cache()  # instances cache the endpoint they were made with
    name = f"selfplay-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem()
    fs.mkdir(name)
    yield fs, name
    s3fs.S3FileSystem.clear_instance_cache()


def test_round_trip_on_s3_commits_resumes_and_loads(bucket):
    fs, name = bucket
    round_dir = f"s3://{name}/runs/exp1/round-0"
    with RoundWriter(round_dir, KINDS, max_rows=2) as writer:
        writer.set_meta({"config_hash": "h1"})
        for i in range(3):
            writer.add(f"p{i}", problem_rows(f"p{i}"))
    assert read_manifest(round_dir)["problems_done"] == 3
    assert all(p.startswith(f"s3://{name}/runs/exp1/round-0/sft/") for p in shard_paths(round_dir, "sft"))

    # A shard PUT whose manifest update never happened (the writer was killed in between).
    orphan = f"{name}/runs/exp1/round-0/sft/part-00042-orphan.parquet"
    fs.pipe_file(orphan, b"not listed")
    with RoundWriter.open(round_dir, KINDS, verify_sha256=True) as writer:
        assert writer.done_problem_ids() == {"p0", "p1", "p2"}
        writer.set_meta({"config_hash": "h1"})
        writer.add("p3", problem_rows("p3"))
    assert not fs.exists(orphan)

    problems = load_rows(round_dir, "problems").column("problem_id").to_pylist()
    assert sorted(problems) == ["p0", "p1", "p2", "p3"]
    assert load_rows(round_dir, "sft", columns=["id"]).num_rows == 4
    write_json(round_dir, "stats.json", {"accepted": 4})
    assert orjson.loads(fs.cat_file(f"{name}/runs/exp1/round-0/stats.json")) == {"accepted": 4}


def test_a_resume_under_another_config_is_refused_on_s3(bucket):
    fs, name = bucket
    round_dir = f"s3://{name}/runs/exp2/round-0"
    with RoundWriter(round_dir, KINDS) as writer:
        writer.set_meta({"config_hash": "h1"})
        writer.add("p0", problem_rows("p0"))
    with pytest.raises(ConfigChangedError):
        with RoundWriter.open(round_dir, KINDS) as writer:
            writer.set_meta({"config_hash": "h2"})
    assert load_rows(round_dir, "problems").num_rows == 1
