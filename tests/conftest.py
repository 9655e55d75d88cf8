"""Fixtures shared across the suite: one local Ray per test session, small real model dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Ray 2.60 turns token auth on by default; tests talk to a Ray on loopback only.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Ray gives a starting node's agent 10 s to register, then fails the start; on a 2-core machine
# that something else keeps busy that is too short (seen at load 15), so the suite allows 5 min.
os.environ.setdefault("RAY_agent_register_timeout_ms", "300000")


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray for the whole session; yields its address for subprocess drivers."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.getcwd()}})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory):
    """A real but untrained reference-architecture model directory (random outputs)."""
    from selfplay.refmodel import save_random_model

    return save_random_model(tmp_path_factory.mktemp("random-model"))


@pytest.fixture(scope="session")
def solver_model_dir(tmp_path_factory):
    """A model trained briefly on 1-digit addition, for tests of the code around a model: it solves
    many of those problems and fails some, so a round has accepted and rejected rows. About a
    minute on 2 cores the first time; cached under .cache/ (keyed by config and code)."""
    from selfplay.bootstrap import BootstrapConfig, ContrastConfig, EvalConfig, run

    config = BootstrapConfig(
        out_dir=str(ROOT / ".cache" / "test-model"), steps=400, threads=1, examples_per_difficulty=2000,
        solve={"addition": [1]}, contrast=ContrastConfig(enabled=False),
        eval=EvalConfig(problems=10, easy={"addition": [1]}, hard={"addition": [2]}, judge_examples=10),
    )
    run(config)
    return Path(config.out_dir)


@pytest.fixture(scope="session")
def reference_model_dir():
    """The default reference model (what `make demo` trains, without its answer-only control), for
    the flywheel's headline test. About 3.5 min on 2 cores the first time; cached under .cache/
    (keyed by config and code)."""
    from selfplay.bootstrap import BootstrapConfig, ContrastConfig, run

    config = BootstrapConfig(out_dir=str(ROOT / ".cache" / "reference"), contrast=ContrastConfig(enabled=False))
    run(config)
    return Path(config.out_dir)
