"""What the vLLM engine does beyond the shared contract (tests/selfplay/engines/test_base.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from selfplay.engines.base import GenerationRequest

CHAT = [{"role": "user", "content": "Name a prime."}]
REPO = Path(__file__).resolve().parents[3]


def test_on_cpu_the_kv_cache_has_the_configured_size_not_a_share_of_ram(vllm_engine):
    cache = vllm_engine.llm.vllm_config.cache_config
    assert cache.kv_cache_memory_bytes == int(0.25 * (1 << 30))


def test_greedy_requests_with_n_above_one_are_answered(vllm_engine):
    # vLLM itself refuses n > 1 without sampling; the engine answers with n identical samples.
    (result,) = vllm_engine.generate([GenerationRequest(prompt=CHAT, n=3, temperature=0.0, max_tokens=8)])
    assert len(result.completions) == 3 and len({c.text for c in result.completions}) == 1


DRIVER = """
import json, sys
from selfplay.engines import EngineConfig, GenerationRequest, load_engine

if __name__ == "__main__":  # vLLM spawns its workers: the guard keeps them from rerunning this
    engine = load_engine(EngineConfig(model=sys.argv[1], engine="vllm", enforce_eager=True, cpu_kv_cache_gib=0.25))
    chat = [{"role": "user", "content": "Name a prime."}]
    (result,) = engine.generate([GenerationRequest(prompt=chat, n=2, temperature=0.0, max_tokens=16)])
    engine.close()
    print(json.dumps([[c.text, c.completion_tokens, c.finish_reason] for c in result.completions]))
"""


@pytest.mark.slow
def test_a_driver_script_with_the_default_mp_executor_stops_at_the_model_eos(vllm_engine, model_dir, tmp_path):
    # The token the model greedily writes first becomes an extra EOS in generation_config.json, so
    # every sample ends at once with it; run as a user would: a script, worker processes, exit.
    (greedy,) = vllm_engine.generate([GenerationRequest(prompt=CHAT, max_tokens=4)])
    first_token = vllm_engine.tokenizer.encode(greedy.completions[0].text, add_special_tokens=False)[0]
    eager = shutil.copytree(model_dir, tmp_path / "eager-eos")
    settings = json.loads((eager / "generation_config.json").read_text())
    settings["eos_token_id"] = [vllm_engine.tokenizer.eos_token_id, first_token]
    (eager / "generation_config.json").write_text(json.dumps(settings))
    script = tmp_path / "drive.py"
    script.write_text(textwrap.dedent(DRIVER))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)
    done = subprocess.run([sys.executable, str(script), str(eager)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [["", 1, "stop"]] * 2
