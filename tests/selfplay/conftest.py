"""Fixtures of the selfplay tests: an S3-compatible object store (a real moto server process)."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest


def _s3fs():
    s3fs = pytest.importorskip("s3fs", reason="s3fs (test extra) is needed for the object-store tests")
    # Look for moto's server without importing it: importing it loads flask into the whole test
    # session, and werkzeug's context proxies then break vLLM's start-up scan of loaded modules.
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        pytest.skip("moto[server] (test extra) is needed for the object-store tests")
    return s3fs


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on a free loopback port, for one test module."""
    _s3fs()
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
    s3fs = _s3fs()
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
