"""Every command the README shows composes exactly as written: each `python -m selfplay.<verb>`
line of its ```bash blocks (and each `python -m jobs.submit ... selfplay.<verb>` line) goes
through the Hydra compose and the verb's typed config, with only the model and the paths swapped
for fixtures; a `generate` line then reads its first problems from a fixture file in the shape
its source preset names."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from selfplay import cli

ROOT = Path(__file__).parents[1]
VERB = re.compile(r"^selfplay\.(generate|flywheel|distill|evaluate|bootstrap)$")
MODEL_KEYS = {"model", "start_model", "base_model", "critic_base_model"}
DIR_KEYS = {"out_dir", "critic_out_dir"}
SHAPE_OF = {("file", "gsm8k"): "gsm8k", ("file", "math"): "math500", ("file", "code"): "mbpp", ("file", "generic"): "math",
            ("hf_dir", "gsm8k"): "gsm8k", ("hf_dir", "generic"): "gsm8k"}
"""The fixture shape a source reads, by (kind, layout): the generic file commands map MATH's columns."""


def readme_commands() -> list[tuple[str, list[str], bool]]:
    """(verb, overrides, via jobs.submit) for every selfplay command in the README's bash blocks."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if "-m" not in words:
                continue
            for i, word in enumerate(words):
                m = VERB.match(word)
                if m and (words[i - 1] == "-m" or "jobs.submit" in words[:i]):
                    commands.append((m.group(1), words[i + 1:], "jobs.submit" in words[:i]))
    return commands


COMMANDS = readme_commands()


def build(verb: str, cfg):
    """The typed config, built as the verb's own entry point builds it."""
    return cli.typed_config(verb, cfg)


def swapped(overrides: list[str], model: Path, tmp: Path, source_path: Path | None) -> list[str]:
    out = []
    for arg in overrides:
        key, eq, value = arg.partition("=")
        last = key.lstrip("+~").rsplit(".", 1)[-1]
        if eq and last in MODEL_KEYS:
            arg = f"{key}={model}"
        elif eq and last in DIR_KEYS:
            arg = f"{key}={tmp / key.replace('.', '-')}"
        elif eq and last == "rounds" and value.startswith("["):  # distill's list of round dirs
            arg = f"{key}=[{tmp / 'round-0'}]"
        elif eq and key.lstrip("+") == "source.path" and source_path is not None:
            arg = f"{key}={source_path}"
        out.append(arg)
    return out


def test_the_readme_shows_the_commands_of_every_source_preset():
    generate = [" ".join(o) for verb, o, _ in COMMANDS if verb == "generate"]
    for preset in ("source=gsm8k", "source=math", "source=code", "source=file"):
        assert any(preset in line for line in generate), f"no README command for {preset}"
    assert {verb for verb, _, _ in COMMANDS} >= {"generate", "flywheel"} and any(s for _, _, s in COMMANDS)


@pytest.mark.parametrize("verb, overrides, submitted", COMMANDS, ids=[f"{v} {' '.join(o)}"[:90] for v, o, _ in COMMANDS])
def test_each_readme_command_composes_into_its_typed_config(verb, overrides, submitted, random_model_dir, tmp_path):
    from tests.fixtures import datasets as fixtures

    config = build(verb, cli.compose(verb, swapped(overrides, random_model_dir, tmp_path, None)))
    if submitted:  # what `python -m jobs.submit` checks before it uploads anything
        from jobs.submit import checked_overrides

        checked_overrides(f"selfplay.{verb}", swapped(overrides, random_model_dir, tmp_path, None), str(ROOT))
    if verb != "generate" or config.source.kind not in ("file", "hf_dir"):
        return
    shape = SHAPE_OF[(config.source.kind, config.source.layout)]
    path = fixtures.write(shape, tmp_path) if config.source.kind == "file" else fixtures.write_hf_dir(shape, tmp_path, split=config.source.split)
    config = build(verb, cli.compose(verb, swapped(overrides, random_model_dir, tmp_path, path)))
    from selfplay.problems import iter_problems
    from selfplay.records import Problem

    first = [p for _, p in zip(range(3), iter_problems(config.source))]
    assert len(first) == 3 and all(isinstance(p, Problem) and (p.answer or p.tests) for p in first), first
