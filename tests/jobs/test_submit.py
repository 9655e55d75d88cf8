"""`python -m jobs.submit` against a real Ray head on loopback, and its checks without one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import runtime_env as renv
from jobs import submit
from selfplay.shards import load_rows, read_manifest

REPO = Path(__file__).resolve().parents[2]
RUN = "addition-smoke"


def helper(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """The helper as a user runs it: a subprocess from the repository root."""
    return subprocess.run([sys.executable, "-m", "jobs.submit", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def round_overrides(model_dir: Path, out_dir: Path, n: int = 4) -> list[str]:
    return [f"solver.engine.model={model_dir}", "solver.engine.engine=hf",
            f"source.tasks=[{{family: addition, n: {n}, difficulty: 2}}]", "strategy.max_samples=2",
            "strategy.wave=2", "strategy.sampling.max_tokens=16", "verifier.workers=1", f"output.out_dir={out_dir}"]


def committed_problem_ids(round_dir: Path) -> list[str]:
    return load_rows(str(round_dir), "problems", columns=["problem_id"]).column("problem_id").to_pylist()


def test_a_round_runs_as_a_job_and_a_resubmission_resumes_it(ray_head, random_model_dir, tmp_path):
    out_dir = tmp_path / "runs" / RUN
    overrides = round_overrides(random_model_dir, out_dir)
    first = helper("--address", ray_head.address, "selfplay.generate", *overrides, env=ray_head.env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"submitted {RUN}: python -m selfplay.generate cluster=ray_job" in first.stdout
    assert f"{RUN}: SUCCEEDED" in first.stdout

    round_dir = out_dir / "round-0"
    manifest = read_manifest(str(round_dir))
    assert manifest["problems_done"] == 4
    assert manifest["meta"]["config"]["cluster"]["address"] == "auto"  # the driver joined the cluster
    for kind in ("problems", "rejected", "critic"):
        assert any((round_dir / kind).glob("*.parquet")), f"no {kind} shards"
    ids = committed_problem_ids(round_dir)
    assert len(ids) == 4 == len(set(ids))
    assert (round_dir / "stats.json").exists()

    stopped = helper("stop", RUN, "--address", ray_head.address, env=ray_head.env)
    assert stopped.returncode == 0 and "is not running" in stopped.stdout, stopped.stdout + stopped.stderr

    # Same command again: Ray refuses a used submission id, so this is attempt 2 of the same run,
    # writing to the same out_dir, and the round resumes from its manifest.
    second = helper("--address", ray_head.address, "selfplay.generate", *overrides, env=ray_head.env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"attempt 2 resumes after {RUN} (SUCCEEDED)" in second.stdout
    assert f"{RUN}-attempt-2: SUCCEEDED" in second.stdout
    assert sorted(committed_problem_ids(round_dir)) == sorted(ids)
    stats = json.loads((round_dir / "stats.json").read_text())
    assert stats["this_run"]["resumed"] == 4 and stats["this_run"]["problems"] == 0

    status = helper("status", RUN, "--address", ray_head.address, env=ray_head.env)
    assert status.returncode == 0
    assert f"| {RUN} | SUCCEEDED" in status.stdout and f"| {RUN}-attempt-2 | SUCCEEDED" in status.stdout
    logs = helper("logs", RUN, "--address", ray_head.address, env=ray_head.env)
    assert logs.returncode == 0 and "resumed" in logs.stdout
