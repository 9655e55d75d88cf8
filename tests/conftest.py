"""Fixtures shared across the suite: one local Ray per test session, small real model dirs."""

from __future__ import annotations

import os

import pytest

# Ray 2.60 turns token auth on by default; tests talk to a Ray on loopback only.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
    """A reference model trained briefly on 1-2 digit addition: it solves some problems and fails
    others, so a round has accepted and rejected rows. Cached under .cache/ across sessions."""
    from selfplay.bootstrap import ensure_test_model

    return ensure_test_model()


@pytest.fixture(scope="session")
def reference_model_dir():
    """The default reference model (what `make demo` trains), for the flywheel's headline test.
    Cached under .cache/ across sessions (about 3.5 min the first time)."""
    from selfplay.bootstrap import ensure_test_reference

    return ensure_test_reference()
