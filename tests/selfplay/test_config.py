"""Every config file composes and maps onto its typed dataclass; wrong keys fail at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfplay.cli import compose, hydra_overrides
from selfplay.config import ConfigError
from selfplay.flywheel import flywheel_config
from selfplay.generate import round_config

CONF = Path(__file__).parents[2] / "conf"
GROUPS = ["source", "solver", "critic", "strategy", "verifier", "output", "cluster"]
# Presets whose required values (???) a user must give; the test fills them the way a user would.
REQUIRED = {
    "source=file": ["source.path=x.jsonl"], "source=hf_dir": ["source.path=x"], "source=hub": ["source.path=x/y"],
    "source=gsm8k": ["source.path=x.jsonl"], "source=math": ["source.path=x.jsonl"], "source=code": ["source.path=x.jsonl"],
    "solver=vllm_gpu": ["solver.engine.model=org/model"], "critic=separate": ["critic.model.engine.model=org/critic"],
}


def _compose(overrides):
    return round_config(compose("generate", overrides))


def _options():
    for group in GROUPS:
        for f in sorted((CONF / group).glob("*.yaml")):
            yield f"{group}={f.stem}"
    for f in sorted((CONF / "experiment").glob("*.yaml")):
        yield f"experiment={f.stem}"


@pytest.mark.parametrize("option", list(_options()))
def test_every_preset_composes_into_typed_config(option):
    cfg = _compose([option, *REQUIRED.get(option, [])])
    assert cfg.round_dir.endswith("round-0")


@pytest.mark.parametrize("path", sorted(CONF.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONF)))
def test_every_config_file_opens_with_the_command_that_runs_it(path):
    head = path.read_text().lstrip()
    assert head.startswith("#") and "python -m selfplay." in head.split("\n\n")[0], f"{path} lacks its run command"


@pytest.mark.parametrize("override, message", [
    ("strategy.kk=3", "config.strategy.kk: unknown key; did you mean 'k'?"),
    ("seeed=3", "config.seeed: unknown key"),
    ("strategy.k=abc", "config.strategy.k: must be int"),
    ("solver.engine.engine=vlm", "must be one of auto, vllm, hf"),
    ("strategy.k=0", "k, wave and max_samples must be >= 1"),
    ("source.tasks.0.n=-1", "n must be >= 0"),
])
def test_wrong_key_or_type_fails_with_its_path(override, message):
    with pytest.raises(ConfigError, match=message.replace("?", r"\?").replace("(", r"\(")):
        _compose([override])


def test_missing_required_value_fails_at_start():
    with pytest.raises(Exception, match="path"):
        _compose(["source=file"])


def test_config_hash_ignores_where_and_how_it_runs_but_not_what_it_generates():
    base = _compose([])
    assert base.hash() == _compose(["output.out_dir=/elsewhere", "cluster.max_in_flight=3", "progress_every_s=1"]).hash()
    assert base.hash() != _compose(["strategy.k=2"]).hash()
    assert base.hash() != _compose(["solver.engine.model=/other"]).hash()
    assert base.hash() != _compose(["critic.judge_share=0.5"]).hash()


def test_requiring_the_critics_approval_needs_it_to_judge_every_trace():
    _compose(["accept.require_critic=true"])
    with pytest.raises(ConfigError, match="require_critic needs the critic to judge every trace"):
        _compose(["accept.require_critic=true", "critic.judge_share=0.5"])
    with pytest.raises(ConfigError, match=r"judge_share must be in \(0, 1\]"):
        _compose(["critic.judge_share=0"])


def test_value_overrides_compose_as_written_and_group_choices_stay_choices():
    assert hydra_overrides(["seed=1", "bootstrap.seed=1", "source=file", "+x=1", "~y", "hydra.run.dir=.", "--cfg"]) == [
        "++seed=1", "++bootstrap.seed=1", "source=file", "+x=1", "~y", "hydra.run.dir=.", "--cfg"]


def test_keys_of_a_dict_valued_config_compose_without_plus():
    cfg = flywheel_config(compose("flywheel", ["flywheel=demo", "seed=2", "bootstrap.seed=2", "bootstrap.out_dir=/tmp/m2"]))
    assert cfg.seed == 2 and cfg.bootstrap.seed == 2 and cfg.bootstrap.out_dir == "/tmp/m2"
    with pytest.raises(ConfigError, match=r"flywheel.bootstrap.sed: unknown key; did you mean 'seed'\?"):
        flywheel_config(compose("flywheel", ["bootstrap.sed=2"]))


def test_a_file_source_column_mapping_composes_as_the_readme_writes_it():
    cfg = _compose(["source=file", "source.path=data/train.jsonl", "source.task=math",
                    "source.columns.question=problem", "source.columns.answer=solution"])
    assert cfg.source.columns == {"question": "problem", "answer": "solution"}


def test_a_preset_changes_the_flywheels_own_defaults_key_by_key():
    # The flywheel samples k = max_samples with no revisions (its StrategyConfig default); the demo
    # changes k, the wave and two token limits, and the rest of the flywheel's choice stays.
    default, demo = (flywheel_config(compose("flywheel", o)) for o in ([], ["flywheel=demo"]))
    assert (default.strategy.revisions, default.strategy.max_samples, default.strategy.sampling.critic_max_tokens) == (0, 4, 32)
    assert (demo.strategy.k, demo.strategy.wave, demo.strategy.max_samples, demo.strategy.revisions) == (1, 2, 4, 0)
    assert (demo.strategy.sampling.max_tokens, demo.strategy.sampling.critic_max_tokens) == (80, 24)
    assert demo.solver.engine.engine == "hf"
    assert flywheel_config(compose("flywheel", ["solver.engine.device=cpu"])).solver.engine.engine == "hf"


@pytest.mark.parametrize("override, message", [
    ("strategy.revisons=1", "flywheel.strategy.revisons: unknown key; did you mean 'revisions'?"),
    ("solver.engine.batchsize=8", "flywheel.solver.engine.batchsize: unknown key; did you mean 'batch_size'?"),
    ("cluster.adress=auto", "flywheel.cluster.adress: unknown key; did you mean 'address'?"),
    ("verifier.timeout=abc", "flywheel.verifier.timeout: must be float"),
    ("distill.epocs=2", "flywheel.distill.epocs: unknown key; did you mean 'epochs'?"),
    ("evaluate.problem=2", "flywheel.evaluate.problem: unknown key; did you mean 'problems'?"),
    ("distill.out_dir=x", "flywheel.distill.out_dir is set by the flywheel per round; remove it"),
    ("solver.engine.model=x", "flywheel.solver.engine.model is set by the flywheel per round; remove it"),
])
def test_a_flywheel_typo_fails_at_start_with_its_path(override, message):
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        flywheel_config(compose("flywheel", [override]))
