"""A real Ray head on loopback for job tests, started with `ray start --head --block`.

Every port is picked free (never Ray's defaults, so it cannot collide with the suite's own local
Ray or another run's), the temp dir is private (a bare `ray.init()` elsewhere finds its address
file in /tmp/ray and must not attach to this cluster), and auth is off explicitly: Ray 2.60 turns
token auth on by default. `--block` keeps `ray start` in the foreground as the parent of the
cluster's processes, so stopping the fixture ends exactly this cluster (never `ray stop`, which
ends every Ray on the machine).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

RAY = Path(sys.executable).with_name("ray")
START_TIMEOUT_S = 90


@dataclass(frozen=True)
class RayHead:
    """A running loopback cluster."""

    address: str
    """Dashboard URL: what `python -m jobs.submit --address` takes."""
    env: dict[str, str]
    """The environment to run helper subprocesses in."""
    temp_dir: str


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _jobs_api_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/jobs/", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _end(proc: subprocess.Popen, temp_dir: str) -> None:
    """End the head's process group (ours: started with start_new_session): SIGTERM, a few
    seconds' grace, SIGKILL (`ray start --block` and the raylet outwait a SIGTERM otherwise, as
    `ray stop` also finds); then any process still naming our private temp dir, by pid."""
    import psutil

    for sig, grace_s in ((signal.SIGTERM, 3), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=grace_s)
        except ProcessLookupError:
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # group members that outlived the leader
    except ProcessLookupError:
        pass
    leftovers = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if p.pid != os.getpid() and any(temp_dir in arg for arg in (p.info["cmdline"] or [])):
                leftovers.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    for p in leftovers:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(leftovers, timeout=10)


@pytest.fixture(scope="module")
def ray_head():
    """A loopback Ray head with the dashboard (the Job Submission server lives there), 2 CPUs."""
    gcs, dash, client, agent_http, agent_grpc, metrics, renv_agent, node_mgr, obj_mgr = _free_ports(9)
    temp_dir = tempfile.mkdtemp(prefix="rayjob-", dir="/tmp")  # short: Ray's unix sockets live under it
    # The job's `python` must be this venv's: the entry point runs in the head's environment.
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("RAY_ADDRESS", None)
    cmd = [str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs}",
           "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
           f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent_http}",
           f"--dashboard-agent-grpc-port={agent_grpc}", f"--metrics-export-port={metrics}",
           f"--runtime-env-agent-port={renv_agent}", f"--node-manager-port={node_mgr}",
           f"--object-manager-port={obj_mgr}", "--num-cpus=2", "--num-gpus=0",
           "--object-store-memory=200000000", f"--temp-dir={temp_dir}", "--disable-usage-stats"]
    log_path = Path(temp_dir) / "ray-start.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _jobs_api_ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray head did not come up:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield RayHead(address=url, env=env, temp_dir=temp_dir)
    finally:
        _end(proc, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
