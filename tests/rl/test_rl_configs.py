"""configs/score.yaml, score_stage1.yaml and rl.yaml load: SCoRe's two rl stages, its stage I
alone with the strong KL on attempt 1, the GRPO baseline."""

from pathlib import Path

import torch
import yaml

from vloom.config import config_from_dict
from vloom.model.io import build_model
from vloom.rl.recipes import recipe_for
from vloom.train.checkpoint import save_checkpoint

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _load(name: str, ckpt: Path):
    text = (CONFIGS / name).read_text()
    for base in ("runs/demo/checkpoints/final", "runs/sft_reading/checkpoints/final"):
        text = text.replace(base, str(ckpt))
    return config_from_dict(yaml.safe_load(text), source=name)


def test_score_and_rl_configs(tmp_path):
    torch.manual_seed(0)
    # a checkpoint of the configs' own model section (init_from must match it)
    model = yaml.safe_load((CONFIGS / "score.yaml").read_text())["model"]
    meta = {"model": model, "vocab_size": 64, "max_seq_len": 32, "image_size": 32}
    m = build_model(meta)
    ckpt = save_checkpoint(tmp_path, "final", m, m.state_dict(), {}, {"step": 0})
    score = _load("score.yaml", ckpt)
    one_, two_ = (recipe_for(score.rl, score.train.stages, i) for i in (0, 1))
    assert [one_.name, two_.name] == ["score_stage1", "score_stage2"]
    # stage I holds attempt 1 with the strong KL; stage II pays both attempts the episode's
    # return, which with alpha 1 is 2 r(y2): attempt 1 earns nothing for its own answer
    assert one_.kl == (1.0, score.rl.score.beta1) and one_.pg == (False, True)
    assert two_.credits(1.0, 0.0) == (0.0, 0.0) and two_.credits(0.0, 1.0) == (2.0, 2.0)
    assert score.rl.attempts == 2 and score.rl.reference == str(ckpt)
    assert "self_correct" in score.eval.tasks
    rl = _load("rl.yaml", ckpt)
    assert [s.kind for s in rl.train.stages] == ["rl"]
    assert recipe_for(rl.rl, rl.train.stages, 0).attempts == 1
    # the baseline has SCoRe's budget: steps, learning rate, rollouts, KL to the base
    assert (score.train.steps, score.train.lr) == (rl.train.steps, rl.train.lr)
    assert (score.rl.prompts_per_step, score.rl.group_size) == (
        rl.rl.prompts_per_step,
        rl.rl.group_size,
    )
    assert score.rl.score.beta1 == rl.rl.kl_coef and rl.rl.reference == str(ckpt)
    one = _load("score_stage1.yaml", ckpt)
    assert [recipe_for(one.rl, one.train.stages, 0).name] == ["score_stage1"]
    assert len(one.train.stages) == 1 and one.train.steps == 320
    assert recipe_for(one.rl, one.train.stages, 0).kl == (1.0, one.rl.score.beta1)
    assert one.train.lr == score.train.lr and one.model == score.model
