"""How every verb starts: `python -m selfplay.<verb> [overrides]`.

Hydra composes conf/<verb>.yaml with the overrides; `typed_config` turns the result into the
verb's frozen dataclass (CONFIGS). Two rules hold for every verb, here and in `jobs.submit`:

- A value override (`seed=1`, `bootstrap.seed=1`, `source.columns.question=problem`) is applied
  as `++key=value`, so a key the YAML does not list (a dict-valued config left `{}`, an optional
  field) composes as written; a config group choice (`source=file`) stays one. The typed check then refuses a real typo with its path and a
  did-you-mean, which Hydra's own "not in struct" cannot do.
- A configuration error (unknown key, wrong type, missing value) prints one line and exits 2.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any, Callable

from selfplay.config import ConfigError

EXIT_BAD_CONFIG = 2
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
CONFIGS = {"generate": "selfplay.pipeline:RoundConfig", "flywheel": "selfplay.flywheel_config:FlywheelConfig",
           "distill": "selfplay.distill:DistillConfig", "evaluate": "selfplay.evaluate:EvaluateConfig",
           "bootstrap": "selfplay.bootstrap:BootstrapConfig"}
"""The dataclass each conf/<verb>.yaml maps onto (`python -m selfplay.<verb>`)."""
_KEY = re.compile(r"^(?P<key>[A-Za-z_][\w-]*(?:\.[\w-]+)*)=")


def hydra_overrides(args: list[str], conf_dir: str | None = None) -> list[str]:
    """The overrides as Hydra should apply them: a value override (`seed=1`, `bootstrap.seed=1`)
    becomes `++key=value` (add or override); a config group choice (`source=file`: conf/source/
    exists), the `+`/`~` forms, `hydra.*` keys and flags pass as given."""
    conf = Path(conf_dir or CONF_DIR)
    out = []
    for arg in args:
        m = _KEY.match(arg)
        key = m["key"] if m else ""
        group_choice = "." not in key and (conf / key).is_dir()
        out.append(f"++{arg}" if key and key != "hydra" and not key.startswith("hydra.") and not group_choice else arg)
    return out


def compose(config_name: str, overrides: list[str], conf_dir: str | None = None):
    """conf/<config_name>.yaml composed with `overrides` as the entry point composes them."""
    from hydra import compose as hydra_compose, initialize_config_dir

    with initialize_config_dir(conf_dir or CONF_DIR, version_base=None):
        return hydra_compose(config_name=config_name, overrides=hydra_overrides(list(overrides), conf_dir))


def plain(cfg: Any) -> dict[str, Any]:
    """A composed config as plain data, without Hydra's own node."""
    from omegaconf import OmegaConf

    data = dict(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True) if OmegaConf.is_config(cfg) else cfg)
    data.pop("hydra", None)
    return data


def config_class(verb: str) -> type:
    import importlib

    module, name = CONFIGS[verb].split(":")
    return getattr(importlib.import_module(module), name)


def typed_config(verb: str, cfg: Any) -> Any:
    """A composed conf/<verb>.yaml (or a plain mapping) as the verb's typed config; ConfigError
    names a bad key by its path (generate's from `config.`, as the README shows it)."""
    from selfplay.config import typed

    data = plain(cfg)
    data.pop(verb, None)  # a preset group named after its verb (flywheel=demo), merged into the top level
    return typed(config_class(verb), data, "config" if verb == "generate" else verb)


def main(config_name: str, build: Callable[[Any], Any], run: Callable[[Any], None]) -> None:
    """Compose conf/<config_name>.yaml from the command line, build the typed config, run it."""
    import hydra

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    sys.argv = [sys.argv[0], *hydra_overrides(sys.argv[1:])]

    def entry(cfg) -> None:
        try:
            config = build(cfg)
        except ConfigError as e:
            print(f"configuration error: {e}", file=sys.stderr)
            sys.exit(EXIT_BAD_CONFIG)
        except Exception as e:
            if type(e).__name__ in ("MissingMandatoryValue", "InterpolationResolutionError"):
                print(f"configuration error: {e}", file=sys.stderr)
                sys.exit(EXIT_BAD_CONFIG)
            raise
        from selfplay.problems import SourceError

        try:
            run(config)
        except SourceError as e:  # a file that cannot be a source: one line naming it, like a bad key
            print(f"source error: {e}", file=sys.stderr)
            sys.exit(EXIT_BAD_CONFIG)

    hydra.main(config_path=CONF_DIR, config_name=config_name, version_base=None)(entry)()
