"""Every verb starts the same way: a bad key is one line naming it, and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("verb, override, message", [
    ("generate", "strategy.kk=3", "config.strategy.kk: unknown key; did you mean 'k'?"),
    ("flywheel", "bootstrap.sed=1", "flywheel.bootstrap.sed: unknown key; did you mean 'seed'?"),
    ("distill", "stepz=3", "distill.stepz: unknown key"),
    ("evaluate", "problemz=3", "evaluate.problemz: unknown key; did you mean 'problems'?"),
    ("bootstrap", "steps=abc", "bootstrap.steps: must be int"),
])
def test_a_bad_key_exits_2_with_one_line_naming_it(verb, override, message, tmp_path):
    extra = {"distill": ["base_model=m", "out_dir=o", "rounds=[r]"], "evaluate": ["model=m"]}.get(verb, [])
    env = os.environ | {"RAY_AUTH_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "-m", f"selfplay.{verb}", *extra, override], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"configuration error: {message}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_file_that_cannot_be_a_source_exits_2_naming_it_before_any_model_loads(tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "math.jsonl").write_text('{"problem": "q", "solution": "so \\\\boxed{1}"}\n')
    env = os.environ | {"RAY_AUTH_MODE": "disabled"}
    for args, message in [
        (["source=gsm8k", f"source.path={tmp_path / 'empty.jsonl'}"], f"source error: {tmp_path / 'empty.jsonl'} is empty"),
        (["source=gsm8k", f"source.path={tmp_path / 'math.jsonl'}"],
         f"source error: {tmp_path / 'math.jsonl'} has no column 'question' (the gsm8k layout's question"),
    ]:
        proc = subprocess.run([sys.executable, "-m", "selfplay.generate", *args, "solver.engine.model=/nowhere"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert message in proc.stderr and "Traceback" not in proc.stderr
