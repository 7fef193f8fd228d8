"""Multi-stage recipes: stage lengths, per-stage mixtures and LR schedules, stage
checkpoints, continual pre-training (init_from), and the example recipe configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tinyexp import tiny_config

from vloom.config import ConfigError, TrainConfig, config_from_dict, load_config
from vloom.train import train
from vloom.train.batches import StepReader
from vloom.train.loop import build_model, read_packed_stats
from vloom.train.mixture import stage_at, stage_bounds, step_plan
from vloom.train.schedule import lr_at

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def test_stage_lengths_in_steps_or_fractions_and_bad_stage_lists():
    tc = TrainConfig(steps=10, stages=[{"name": "a", "steps": 3}, {"name": "b", "steps": 7}])
    assert stage_bounds(tc) == [(0, 3), (3, 10)]
    assert [stage_at(s, tc) for s in range(10)] == [0] * 3 + [1] * 7
    for stages, msg in [
        ([{"name": "a", "steps": 3}, {"name": "b", "fraction": 0.5}], "every stage steps"),
        ([{"name": "a", "steps": 3}, {"name": "b", "steps": 3}], "sum to 6 but train.steps is 10"),
        ([{"name": "a", "fraction": 0.5}, {"name": "a", "fraction": 0.5}], "unique"),
        ([{"name": "a", "fraction": 0.5}, {"name": "b"}], "each needs a fraction"),
        ([{"name": "a", "mixture": {"pairs": 1}, "image_text_ratio": 0.5}], "not both"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            config_from_dict({"train": {"steps": 10, "stages": stages}})


def test_a_stage_with_its_own_lr_rewarms_and_decays_within_the_stage():
    tc = TrainConfig(
        steps=20,
        lr=1.0,
        warmup_steps=2,
        min_lr_ratio=0.0,
        stages=[
            {"name": "a", "fraction": 0.5},
            {"name": "b", "fraction": 0.5, "lr": 0.1, "warmup_steps": 5, "schedule": "wsd"},
        ],
    )
    a = [lr_at(s, tc) for s in range(10)]
    b = [lr_at(s, tc) for s in range(10, 20)]
    # stage a follows the run's cosine over 20 steps; b restarts: warmup to 0.1, hold, decay
    assert a[1] == pytest.approx(1.0) and a[9] == pytest.approx(lr_at(9, tc, total=20))
    assert b[0] == pytest.approx(0.02) and b[4] == pytest.approx(0.1)
    assert b[5:8] == [pytest.approx(0.1)] * 3 and b[-1] < 0.1


def test_rows_carry_their_source_and_a_mixture_draws_only_its_sources(tiny_data):
    stats = read_packed_stats(tiny_data["packed"])
    assert set(stats["sources"]) == {"synth/pairs", "synth/interleaved", "synth/text"}
    f = safe_open(str(tiny_data["packed"] / "text-00000.safetensors"), framework="numpy")
    assert f.get_tensor("sources").shape == (f.get_slice("tokens").get_shape()[0],)
    cfg = tiny_config(
        train__steps=4,
        train__stages=[
            {"name": "pairs", "fraction": 0.5, "mixture": {"pairs": 1.0}},
            {"name": "mix", "fraction": 0.5, "mixture": {"synth/text": 1, "interleaved": 3}},
        ],
        train__image_start_fraction=0.0,
    )
    sources = stats["sources"]
    reader = StepReader(tiny_data["packed"], cfg, sources)
    plan = step_plan(0, cfg.train, cfg.seed, sources)
    assert set(plan) == {"src:synth/pairs"}
    batch = reader.read(0)
    assert batch.image_rows >= 1 and len(batch.micros[0].inputs) == cfg.train.batch_size
    # the mixture's stream holds exactly the rows tagged with its source, from both streams
    pair_id = sources.index("synth/pairs")
    n_pair_rows = sum(
        int((safe_open(str(p), framework="numpy").get_tensor("sources") == pair_id).sum())
        for p in sorted(tiny_data["packed"].glob("*.safetensors"))
    )
    assert len(reader.streams["src:synth/pairs"]) == n_pair_rows > 0
    shares = [step_plan(s, cfg.train, cfg.seed, sources) for s in range(2, 4)] + [
        step_plan(2, cfg.train.model_copy(update={"batch_size": 400}), s, sources) for s in range(3)
    ]
    flat = [k for p in shares for k in p]
    assert set(flat) == {"src:synth/text", "src:synth/interleaved"}
    assert flat.count("src:synth/interleaved") / len(flat) == pytest.approx(0.75, abs=0.05)
    bad = tiny_config(train__stages=[{"name": "x", "mixture": {"webdocs": 1.0}}])
    with pytest.raises(ValueError, match="'webdocs' is not in the packed data"):
        train(bad, tiny_data["packed"], tiny_data["root"] / "never", quiet=True)


def test_recipe_stages_freeze_parts_and_save_a_checkpoint_at_each_stage_end(tiny_data, tmp_path):
    cfg = tiny_config(
        train__steps=6,
        train__batch_size=16,  # pairs longer than a row leave caption-only rows: enough rows a step
        train__image_start_fraction=0.0,
        train__stages=[
            {"name": "text", "fraction": 0.5, "trainable": ["lm"], "image_text_ratio": 0.0},
            {
                "name": "align",
                "fraction": 0.5,
                "trainable": ["vision", "connector"],
                "mixture": {"pairs": 1.0},
                "lr": 0.001,
                "warmup_steps": 1,
            },
        ],  # fmt: skip
    )
    run = tmp_path / "run"
    train(cfg, tiny_data["packed"], run, quiet=True)
    ck = run / "checkpoints"
    assert {p.name for p in ck.iterdir()} >= {"stage-text", "stage-align", "final"}
    assert json.loads((ck / "stage-text" / "state.json").read_text())["step"] == 3
    recs = _metrics(run)
    assert [r["stage"] for r in recs] == ["text", "align", "align"]
    assert recs[0]["image_frac"] == 0 and recs[-1]["image_frac"] > 0
    text_end, final = _weights(ck / "stage-text"), _weights(ck / "final")
    for k in final:
        moved = not torch.equal(final[k], text_end[k])
        if k.startswith("lm."):
            assert not moved, k  # the LM is frozen in the second stage
        if k.startswith("vision.") and k.endswith("weight") and "norm" not in k:
            assert moved, k


def test_continual_pretraining_starts_from_a_stage_checkpoint_with_rewarmup(tiny_data, tmp_path):
    first = tmp_path / "first"
    cfg = tiny_config(
        train__steps=4,
        train__stages=[{"name": "a", "fraction": 0.5}, {"name": "b", "fraction": 0.5}],
    )
    train(cfg, tiny_data["packed"], first, quiet=True)
    src = first / "checkpoints" / "stage-a"
    # lr so small the weights cannot move: the new run's first weights are the checkpoint's
    cont = tiny_config(train__steps=1, train__lr=1e-12, train__init_from=str(src))
    s = train(cont, tiny_data["packed"], tmp_path / "cont", quiet=True)
    assert s["init_from"] == str(src) and s["resumed_from"] is None
    a, b = _weights(src), _weights(tmp_path / "cont" / "checkpoints" / "final")
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=0, msg=k)
    meta = json.loads((tmp_path / "cont" / "checkpoints" / "final" / "config.json").read_text())
    assert meta["init_from"] == str(src.resolve())
    # a fresh optimizer: Adam's step count restarts; the LR warms up again from step 0
    opt = load_file(str(tmp_path / "cont" / "checkpoints" / "final" / "optimizer.safetensors"))
    assert float(opt["lm.embed_tokens.weight::step"]) == 1.0
    rew = tiny_config(train__steps=4, train__warmup_steps=2, train__init_from=str(src))
    train(rew, tiny_data["packed"], tmp_path / "rew", quiet=True)
    lrs = [r["lr"] for r in _metrics(tmp_path / "rew")]
    assert lrs[0] == pytest.approx(rew.train.lr)  # logged at step 2: end of the 2-step warmup
    assert lr_at(0, rew.train) == pytest.approx(rew.train.lr / 2)


def test_init_from_another_architecture_or_a_corrupt_file_is_a_one_line_error(tiny_data, tmp_path):
    small = tmp_path / "small"
    train(tiny_config(train__steps=1), tiny_data["packed"], small, quiet=True)
    ck = small / "checkpoints" / "final"
    # a model section for another width is refused, naming the fields (never silently swapped)
    with pytest.raises(ConfigError, match=r"model\.d_model \(64 here, 32 there\)") as e:
        tiny_config(train__steps=1, train__init_from=str(ck), model__d_model=64, model__n_heads=2)
    assert "\n" not in str(e.value) and "model: {from:" in str(e.value)
    # weights that do not match the checkpoint's own config.json: a one-line shape error
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text((ck / "config.json").read_text())
    big = build_model(
        tiny_config(model__d_model=64, model__n_heads=2), read_packed_stats(tiny_data["packed"])
    )
    from vloom.model.io import state_dict_for_save

    save_file(state_dict_for_save(big), str(other / "model.safetensors"))
    with pytest.raises(
        ValueError, match=r"fc1.bias has shape \(64,\) in the checkpoint but \(32,\) in this model"
    ):
        train(
            tiny_config(train__steps=1, train__init_from=str(other)),
            tiny_data["packed"],
            tmp_path / "wide",
            quiet=True,
        )
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "model.safetensors"):
        data = (ck / name).read_bytes()
        (broken / name).write_bytes(data[: len(data) // 2] if name.endswith("tensors") else data)
    with pytest.raises(ValueError, match="corrupt safetensors file") as e:
        train(tiny_config(train__steps=1, train__init_from=str(broken)), tiny_data["packed"],
              tmp_path / "b", quiet=True)  # fmt: skip
    assert "\n" not in str(e.value)
    # resuming a run whose newest checkpoint is corrupt: the same one-line error
    run = tmp_path / "resume"
    train(
        tiny_config(train__steps=4, train__checkpoint_every=2), tiny_data["packed"], run, quiet=True
    )
    (run / "train_summary.json").unlink()
    w = run / "checkpoints" / "final" / "optimizer.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    (run / "checkpoints" / "final").rename(run / "checkpoints" / "step-000004")
    with pytest.raises(ValueError, match="optimizer.safetensors: corrupt safetensors file"):
        train(tiny_config(train__steps=5, train__checkpoint_every=2), tiny_data["packed"], run,
              quiet=True)  # fmt: skip


@pytest.mark.parametrize("name", ["qwen2vl", "molmo", "keh"])
def test_recipe_configs_run_a_few_steps(name, tiny_data, tmp_path):
    over = {"train.steps": 6, "train.batch_size": 4, "train.threads": 1, "control": False}
    cfg = load_config(CONFIGS / f"{name}.yaml", over)
    s = train(cfg, tiny_data["packed"], tmp_path / name, quiet=True)
    assert np.isfinite(s["final_loss"])
    stages = [st.name for st in cfg.train.stages]
    assert [r["stage"] for r in _metrics(tmp_path / name)][-1] == stages[-1]
    for st in stages:
        assert (tmp_path / name / "checkpoints" / f"stage-{st}" / "state.json").exists()


def test_a_checkpoint_that_fails_mid_write_never_looks_complete(tiny_data, tmp_path):
    from vloom.train.checkpoint import latest_checkpoint, save_checkpoint

    vlm = build_model(tiny_config(), read_packed_stats(tiny_data["packed"]))
    root = tmp_path / "checkpoints"
    weights = vlm.state_dict()
    with pytest.raises(ValueError):  # the optimizer file cannot be written: a crash mid-save
        save_checkpoint(root, "stage-a", vlm, weights, {"bad": "not a tensor"}, {"step": 3})
    assert not (root / "stage-a").exists() and list(root.glob(".tmp-stage-a-*"))
    assert latest_checkpoint(root) is None and not list(root.glob(".tmp-*"))
    save_checkpoint(root, "stage-a", vlm, weights, {}, {"step": 3})
    assert latest_checkpoint(root) == root / "stage-a"


def test_lr_mult_scales_a_parts_learning_rate(tiny_data, tmp_path):
    first = tmp_path / "first"
    train(tiny_config(train__steps=2), tiny_data["packed"], first, quiet=True)
    src = first / "checkpoints" / "final"
    # the connector's rate x 0: it keeps the checkpoint's weights while the rest trains
    cfg = tiny_config(
        train__steps=3,
        train__batch_size=16,  # enough image rows a step (see the recipe test above)
        train__image_start_fraction=0.0,
        train__init_from=str(src),
        train__lr_mult={"connector": 0.0, "vision": 3.0},
    )
    train(cfg, tiny_data["packed"], tmp_path / "run", quiet=True)
    a, b = _weights(src), _weights(tmp_path / "run" / "checkpoints" / "final")
    conn = [k for k in a if k.startswith("connector.")]
    assert conn and all(torch.equal(a[k], b[k]) for k in conn)
    assert not torch.equal(a["lm.embed_tokens.weight"], b["lm.embed_tokens.weight"])
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("vision."))
    with pytest.raises(ConfigError, match="lr_mult.lm: Input should be greater than or equal to 0"):
        config_from_dict({"train": {"lr_mult": {"lm": -1}}})
    with pytest.raises(ConfigError, match="lr_mult"):
        config_from_dict({"train": {"lr_mult": {"tower": 2}}})  # not a part
