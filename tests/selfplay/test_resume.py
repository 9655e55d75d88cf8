"""Kill the round's driver with SIGKILL at a random moment, rerun the same command: the result is
exactly an uninterrupted run's, with no duplicate and no missing row."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from selfplay.shards import load_rows, read_manifest

ROOT = Path(__file__).parents[2]


def _command(model_dir, out_dir, address) -> list[str]:
    return [sys.executable, "-m", "selfplay.generate", f"solver.engine.model={model_dir}", "solver.engine.engine=hf",
            "solver.num_cpus=0.5", "'source.tasks=[{family: addition, n: 10, difficulty: 1}]'",
            "strategy.k=2", "strategy.wave=2", "strategy.max_samples=4", "strategy.unsolvable_after=4",
            "strategy.sampling.max_tokens=40", "strategy.sampling.critic_max_tokens=8", "verifier.workers=1",
            f"output.out_dir={out_dir}", "output.max_age_s=0", "cluster.max_in_flight=3",
            f"cluster.address={address}", "progress_every_s=0"]


def _run(cmd, **kw) -> subprocess.Popen:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(" ".join(cmd), shell=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def _rows(round_dir: str) -> dict[str, list[tuple]]:
    out = {}
    for kind, key in (("problems", ("problem_id", "samples", "verified", "accepted")),
                      ("sft", ("problem_id", "id")), ("rejected", ("problem_id", "id")), ("critic", ("problem_id", "id")),
                      ("pairs", ("problem_id", "id")), ("prm", ("problem_id", "id"))):
        table = load_rows(round_dir, kind).to_pylist()
        out[kind] = sorted(tuple(r[k] for k in key) for r in table)
    return out


def test_sigkill_at_a_random_moment_then_rerun_equals_an_uninterrupted_run(ray_cluster, solver_model_dir, tmp_path):
    whole = _run(_command(solver_model_dir, tmp_path / "whole", ray_cluster))
    assert whole.wait(timeout=300) == 0, whole.stderr.read()[-3000:]

    killed_dir = tmp_path / "killed"
    victim = _run(_command(solver_model_dir, killed_dir, ray_cluster))
    manifest = killed_dir / "round-0" / "manifest.json"
    deadline = time.time() + 240
    while not manifest.exists() and time.time() < deadline and victim.poll() is None:
        time.sleep(0.1)
    delay = random.uniform(0, 4)
    print(f"killing the driver {delay:.2f}s after its first commit")
    time.sleep(delay)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    before = len(read_manifest(str(killed_dir / "round-0"))["shards"])

    again = _run(_command(solver_model_dir, killed_dir, ray_cluster))
    assert again.wait(timeout=300) == 0, again.stderr.read()[-3000:]

    expected, got = _rows(str(tmp_path / "whole" / "round-0")), _rows(str(killed_dir / "round-0"))
    assert len(got["problems"]) == 10 and before >= 1 and got["pairs"] and got["prm"]
    for kind in expected:
        ids = [r[:2] for r in got[kind]]
        assert len(ids) == len(set(ids)), f"duplicate {kind} rows after resume"
        assert got[kind] == expected[kind], f"{kind} rows differ from the uninterrupted run"
