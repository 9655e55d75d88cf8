"""`python -m jobs.submit` against a real Ray head on loopback, and its checks without one."""

from __future__ import annotations

import json
import shlex
import socket
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
    assert "tokens" in first.stdout  # the helper followed the job's log to the round's summary table


# ---- checks that need no cluster: bad input is refused before anything is sent ----------------

def test_a_typo_in_an_override_fails_before_submission(tmp_path):
    r = helper("--address", "http://127.0.0.1:9", "selfplay.generate", "solver.engin.model=/m",
               f"output.out_dir={tmp_path}/exp1")
    assert r.returncode == submit.EXIT_BAD_INPUT
    assert "solver.engin: unknown key; did you mean 'engine'?" in r.stderr and "Traceback" not in r.stderr


def test_a_wrong_type_names_the_key():
    with pytest.raises(submit.SubmitError, match="strategy.wave: must be int"):
        submit.checked_overrides("selfplay.generate", ["strategy.wave=many"], str(REPO))


def test_overrides_pass_through_quoted_and_cluster_is_chosen_once():
    overrides = ["source.tasks=[{family: addition, n: 4, difficulty: 2}]", "critic=none"]
    sent = submit.checked_overrides("selfplay.generate", overrides, str(REPO))
    assert sent == ["cluster=ray_job", *overrides]
    assert shlex.split(submit.entrypoint("selfplay.generate", sent))[3:] == sent
    assert submit.checked_overrides("selfplay.generate", ["cluster=local", *overrides], str(REPO))[0] == "cluster=local"


def test_the_flywheel_joins_the_cluster_too():
    sent = submit.checked_overrides("selfplay.flywheel", ["flywheel=demo", "out_dir=/mnt/runs/fw1"], str(REPO))
    assert sent[0] == "cluster=ray_job"
    from selfplay.cli import compose
    from selfplay.flywheel_config import flywheel_config

    cfg = flywheel_config(compose("flywheel", sent))
    assert cfg.cluster.address == "auto" and cfg.cluster.max_in_flight == 1024  # the demo preset's, over ray_job's
    assert submit.run_name(None, sent) == "fw1"


def test_an_unknown_entry_point_is_refused():
    with pytest.raises(submit.SubmitError, match="no such module"):
        submit.checked_overrides("selfplay.generat", [], str(REPO))


def test_the_run_name_comes_from_the_out_dir_or_must_be_given():
    assert submit.run_name(None, ["output.out_dir=s3://b/runs/exp7/"]) == "exp7"
    assert submit.run_name("mine", ["output.out_dir=/x/exp7"]) == "mine"
    with pytest.raises(submit.SubmitError, match="name the run"):
        submit.run_name(None, ["round=1"])
    with pytest.raises(submit.SubmitError, match="run name"):
        submit.run_name("bad name!", [])
    assert submit.submission_id("exp7", 1) == "exp7" and submit.submission_id("exp7", 3) == "exp7-attempt-3"


def test_the_shipped_runtime_env_passes_and_uploads_little():
    size = renv.check(renv.load())
    assert size is not None and size.bytes < 20 * 2**20
    assert not any(p.startswith((".git", ".venv")) for p, _ in size.largest)


def write_env(tmp_path, text: str) -> Path:
    path = tmp_path / "runtime_env.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text,message", [
    ("working_dir: .\nenv_var: {RAY_AUTH_MODE: disabled}\n", "env_var: not a Ray runtime env key (did you mean 'env_vars'?)"),
    ("env_vars: {RAY_AUTH_MODE: disabled, VLLM_NO_USAGE_STATS: 1}\n", "VLLM_NO_USAGE_STATS: 1 must be a string"),
    ("env_vars: {HF_HOME: /x}\n", "RAY_AUTH_MODE: required"),
    ("env_vars: {RAY_AUTH_MODE: off}\n", "is not one of disabled, token"),
    ("pip: [x]\nconda: {}\nuv: [y]\nenv_vars: {RAY_AUTH_MODE: disabled}\n", "only one package installer"),
    ("working_dir: does-not-exist\nenv_vars: {RAY_AUTH_MODE: disabled}\n", "is not a directory"),
    ("- a list\n", "a runtime env is a mapping"),
])
def test_a_bad_runtime_env_is_refused_with_its_reason(tmp_path, text, message):
    with pytest.raises(renv.RuntimeEnvError) as e:
        renv.check(renv.load(write_env(tmp_path, text)))
    assert message in str(e.value)


def test_an_oversized_working_dir_names_what_to_exclude(tmp_path):
    work = tmp_path / "work"
    (work / "weights").mkdir(parents=True)
    (work / "weights" / "model.npy").write_bytes(b"\0" * (3 * 2**20))
    (work / "code.py").write_text("print(1)\n")
    env = {"working_dir": str(work), "env_vars": {"RAY_AUTH_MODE": "disabled"}}
    with pytest.raises(renv.RuntimeEnvError, match=r"packs to .* over the 1.0 MiB upload limit.*weights"):
        renv.check(env, max_upload_bytes=2**20)
    assert renv.check({**env, "excludes": ["weights/"]}, max_upload_bytes=2**20).files == 1


def test_the_cli_reports_a_bad_runtime_env_without_a_traceback(tmp_path):
    path = write_env(tmp_path, "env_vars: {RAY_AUTH_MODE: disabled}\nworkdir: .\n")
    r = helper("--runtime-env", str(path), "--run", "x", "selfplay.generate")
    assert r.returncode == submit.EXIT_BAD_INPUT
    assert "workdir: not a Ray runtime env key (did you mean 'working_dir'?)" in r.stderr
    assert "Traceback" not in r.stderr


def test_no_cluster_at_the_address_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = helper("status", "exp1", "--address", f"http://127.0.0.1:{port}", timeout=120)
    assert r.returncode == submit.EXIT_NO_CLUSTER, r.stdout + r.stderr
    assert "cannot reach the Ray job server" in r.stderr and "Traceback" not in r.stderr
