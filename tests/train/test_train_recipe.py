import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tinyexp import tiny_config

from vloom.config import TrainConfig
from vloom.train import train
from vloom.train.mixture import image_slots, images_on, stage_at
from vloom.train.schedule import lr_at


def test_cosine_warms_up_then_decays_to_the_floor():
    tc = TrainConfig(steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.1, schedule="cosine")
    lrs = [lr_at(s, tc) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[-1] == pytest.approx(0.1, abs=0.01)


def test_wsd_holds_then_decays():
    tc = TrainConfig(
        steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.0, schedule="wsd", decay_fraction=0.2
    )
    assert lr_at(50, tc) == 1.0 and lr_at(79, tc) == 1.0
    assert lr_at(90, tc) == pytest.approx(0.5)
    assert lr_at(99, tc) == pytest.approx(0.05)


def test_image_start_fraction_and_ratio():
    tc = TrainConfig(steps=100, image_start_fraction=0.8, image_text_ratio=0.25)
    assert not images_on(79, tc) and images_on(80, tc)
    assert not image_slots(50, 64, tc, seed=0).any()
    share = np.mean([image_slots(s, 64, tc, seed=0).mean() for s in range(80, 100)])
    assert 0.18 < share < 0.32
    assert (image_slots(90, 64, tc, 0) == image_slots(90, 64, tc, 0)).all()  # pure function of step
    never = TrainConfig(steps=100, image_start_fraction=1.0)
    assert not any(images_on(s, never) for s in range(100))


def test_stage_boundaries_follow_fractions():
    tc = TrainConfig(
        steps=10, stages=[{"name": "a", "fraction": 0.3}, {"name": "b", "fraction": 0.7}]
    )
    assert [stage_at(s, tc) for s in range(10)] == [0, 0, 0] + [1] * 7


def test_frozen_parts_do_not_move_and_text_only_never_sees_images(tiny_data, tmp_path):
    cfg = tiny_config(
        train__stages=[
            {"name": "connector_only", "fraction": 0.5, "trainable": ["connector"]},
            {"name": "lm_only", "fraction": 0.5, "trainable": ["lm"]},
        ],
        train__image_start_fraction=0.0,
        train__image_text_ratio=0.5,
        # pairs longer than a row leave caption-only rows: with 4 rows a step, the connector's
        # 4 steps could see no image at all (the world's per-object place sentences)
        train__batch_size=16,
    )
    torch.manual_seed(cfg.seed)
    from vloom.train.loop import build_model, read_packed_stats

    init = {
        k: v.clone()
        for k, v in build_model(cfg, read_packed_stats(tiny_data["packed"])).state_dict().items()
    }
    train(cfg, tiny_data["packed"], tmp_path / "run", quiet=True)
    final = load_file(str(tmp_path / "run" / "checkpoints" / "final" / "model.safetensors"))
    for k, v in final.items():
        moved = not torch.equal(v, init[k])
        if k.startswith("vision."):
            assert not moved, k
        if k.startswith(("connector.", "lm.")) and k.endswith("weight") and "norm" not in k:
            assert moved, k
    import json

    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in recs} == {"connector_only", "lm_only"}
    ctl = tiny_config(train__image_start_fraction=1.0)
    train(ctl, tiny_data["packed"], tmp_path / "ctl", quiet=True)
    recs = [json.loads(x) for x in (tmp_path / "ctl" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["image_frac"] == 0 and not r["images_on"] for r in recs)


def test_grad_accumulation_and_wsd_run(tiny_data, tmp_path):
    cfg = tiny_config(train__grad_accum=2, train__batch_size=2, train__schedule="wsd")
    s = train(cfg, tiny_data["packed"], tmp_path / "run", quiet=True)
    assert s["tokens"] == 8 * 4 * 64 and np.isfinite(s["final_loss"])
