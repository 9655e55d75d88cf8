"""`python -m selfplay.generate [overrides]`: one self-play round (see conf/generate.yaml)."""

from __future__ import annotations

import sys

from selfplay import cli
from selfplay.pipeline import RoundConfig, run_round
from selfplay.problems import SourceError


def round_config(cfg) -> RoundConfig:
    """The composed Hydra config as a typed RoundConfig (ConfigError names the bad key)."""
    return cli.typed_config("generate", cfg)


def generate(rc: RoundConfig) -> None:
    if rc.bootstrap_if_missing:
        from selfplay.bootstrap import ensure_reference_model

        ensure_reference_model(rc.solver.engine.model)
    try:
        run_round(rc)
    except SourceError as e:  # a file that cannot be a source: one line naming it, as for config errors
        print(f"source error: {e}", file=sys.stderr)
        sys.exit(cli.EXIT_BAD_CONFIG)


if __name__ == "__main__":
    cli.main("generate", round_config, generate)
