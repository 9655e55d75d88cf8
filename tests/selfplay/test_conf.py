"""conf/ as a whole: every primary config and every preset of its groups composes, through the
path the command line takes, into its verb's typed config; the flat reference (conf/REFERENCE.md)
matches the code; a default left out of the YAML means what it meant when the YAML stated it."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from selfplay import cli
from selfplay.config import REFERENCE, REFERENCE_COMMAND, reference

ROOT = Path(__file__).parents[2]
CONF = ROOT / "conf"
REQUIRED = {
    "distill": ["base_model=m", "out_dir=o", "rounds=[r]"], "evaluate": ["model=m"],
    "source=file": ["source.path=x.jsonl"], "source=hf_dir": ["source.path=x"], "source=hub": ["source.path=x/y"],
    "source=gsm8k": ["source.path=x.jsonl"], "source=math": ["source.path=x.jsonl"], "source=code": ["source.path=x.jsonl"],
    "solver=vllm_gpu": ["solver.engine.model=org/model"], "critic=separate": ["critic.model.engine.model=org/critic"],
}
"""Values marked ??? in the YAML, given the way a user gives them."""


def groups(verb: str) -> list[str]:
    """The config groups conf/<verb>.yaml chooses from (its defaults list, Hydra's own left out)."""
    entries = OmegaConf.to_container(OmegaConf.load(CONF / f"{verb}.yaml")).get("defaults", [])
    return [key for e in entries if isinstance(e, dict) for key in e if not key.startswith("override ")]


def compositions() -> list[tuple[str, list[str]]]:
    out = []
    for primary in sorted(CONF.glob("*.yaml")):
        verb = primary.stem
        out.append((verb, REQUIRED.get(verb, [])))
        for group in groups(verb):
            for preset in sorted((CONF / group).glob("*.yaml")):
                option = f"{group}={preset.stem}"
                out.append((verb, [option, *REQUIRED.get(verb, []), *REQUIRED.get(option, [])]))
    return out


@pytest.mark.parametrize("verb, overrides", compositions(), ids=lambda x: " ".join(x) if isinstance(x, list) else x)
def test_every_config_and_every_preset_composes_into_its_typed_config(verb, overrides):
    assert verb in cli.CONFIGS, f"conf/{verb}.yaml has no typed config in selfplay.cli.CONFIGS"
    config = cli.typed_config(verb, cli.compose(verb, overrides))
    assert isinstance(config, cli.config_class(verb))


def test_every_preset_belongs_to_a_config():
    used = {group for verb in cli.CONFIGS for group in groups(verb)}
    assert {d.name for d in CONF.iterdir() if d.is_dir()} == used


def test_the_reference_matches_the_configs():
    assert (ROOT / REFERENCE).read_text() == reference(), f"{REFERENCE} is out of date: run `{REFERENCE_COMMAND}`"


def _configs() -> list[type]:
    seen, todo = [], [cli.config_class(verb) for verb in cli.CONFIGS]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.append(cls)
        for tp in typing.get_type_hints(cls).values():
            todo += [t for t in (tp, *typing.get_args(tp)) if dataclasses.is_dataclass(t)]
    return seen


@pytest.mark.parametrize("cls", _configs(), ids=lambda c: c.__name__)
def test_float_fields_default_to_floats(cls):
    # A value left out of the YAML is the dataclass default; written out next to the output
    # (manifests, flywheel.json) it must read as the YAML's 1.0 did, not as 1.
    hints = typing.get_type_hints(cls)
    ints = [f.name for f in dataclasses.fields(cls) if hints[f.name] in (float, float | None)
            and isinstance(f.default, int) and not isinstance(f.default, bool)]
    assert not ints, f"{cls.__name__}: {ints} default to an int"
