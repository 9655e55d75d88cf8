"""`python -m selfplay.generate [overrides]`: one self-play round (see conf/generate.yaml)."""

from __future__ import annotations

from selfplay import cli
from selfplay.pipeline import RoundConfig, run_round


def round_config(cfg) -> RoundConfig:
    """The composed Hydra config as a typed RoundConfig (ConfigError names the bad key)."""
    return cli.typed_config("generate", cfg)


def generate(rc: RoundConfig) -> None:
    if rc.bootstrap_if_missing:
        from selfplay.bootstrap import ensure_reference_model

        ensure_reference_model(rc.solver.engine.model)
    run_round(rc)


if __name__ == "__main__":
    cli.main("generate", round_config, generate)
