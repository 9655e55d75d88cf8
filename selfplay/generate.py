"""`python -m selfplay.generate [overrides]`: one self-play round (see conf/generate.yaml)."""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from selfplay.config import ConfigError, typed
from selfplay.pipeline import RoundConfig, run_round

log = logging.getLogger("selfplay.generate")


def round_config(cfg: DictConfig) -> RoundConfig:
    """The composed Hydra config as a typed RoundConfig (ConfigError names the bad key)."""
    plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    plain.pop("hydra", None)
    return typed(RoundConfig, plain, "config")


@hydra.main(config_path="../conf", config_name="generate", version_base=None)
def main(cfg: DictConfig) -> None:
    try:
        rc = round_config(cfg)
    except (ConfigError, Exception) as e:
        if isinstance(e, ConfigError) or type(e).__name__ == "MissingMandatoryValue":
            print(f"configuration error: {e}", file=sys.stderr)
            sys.exit(2)
        raise
    if rc.bootstrap_if_missing:
        from selfplay.bootstrap import ensure_reference_model

        ensure_reference_model(rc.solver.engine.model)
    run_round(rc)


if __name__ == "__main__":
    main()
