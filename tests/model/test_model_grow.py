"""HyperCloning: the grown model computes the small model's function, on disk and in memory."""

import json

import pytest
import torch

from vloom.cli import main
from vloom.config import ModelConfig
from vloom.model import VLM, load_model, save_model
from vloom.model.grow import grow_checkpoint, grow_model, parse_factor
from vloom.sequence import IMAGE_ID

VISION = {"d_model": 16, "n_layers": 1, "n_heads": 2, "patch_size": 4, "merge": 2}


def _model(tie=True, kv=2, seed=0):
    cfg = ModelConfig(
        d_model=32, n_layers=2, n_heads=4, n_kv_heads=kv, tie_embeddings=tie, vision=VISION
    )
    torch.manual_seed(seed)
    m = VLM(cfg, vocab_size=50, max_seq_len=32, image_size=16).eval()
    with torch.no_grad():  # move off the init (unit norms, zero biases) like a trained model
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


def _inputs(images=True):
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(4, 50, (2, 20), generator=g)
    if not images:
        return tokens, None
    tokens[0, 3:7] = IMAGE_ID
    tokens[1, 10:14] = IMAGE_ID
    return tokens, torch.randint(0, 256, (2, 16, 16, 3), dtype=torch.uint8, generator=g)


def _max_diff(a, b, images=True):
    tokens, ims = _inputs(images)
    with torch.no_grad():
        return (a(tokens, ims)[0] - b(tokens, ims)[0]).abs().max().item()


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("factor", [2, 3])
def test_grown_lm_matches_small_text_only(tie, factor):
    small = _model(tie=tie)
    big = grow_model(small, factor).eval()
    assert big.cfg.d_model == 32 * factor and big.cfg.n_heads == 4 * factor
    assert big.cfg.n_kv_heads == 2 * factor
    assert big.num_params("lm") > 2 * small.num_params("lm")
    assert _max_diff(small, big, images=False) <= 1e-4


@pytest.mark.parametrize("grow_vision", [False, True])
@pytest.mark.parametrize("tie", [True, False])
def test_grown_vlm_matches_small_with_images(grow_vision, tie):
    small = _model(tie=tie, kv=None)
    big = grow_model(small, 2, grow_vision=grow_vision).eval()
    assert big.vision.cfg.d_model == (32 if grow_vision else 16)
    assert _max_diff(small, big) <= 1e-4


def test_cancelling_noise_keeps_the_function_and_breaks_symmetry():
    small = _model()
    plain = grow_model(small, 2)
    noisy = grow_model(small, 2, noise=0.02, seed=3, grow_vision=True).eval()
    assert _max_diff(small, noisy) <= 1e-4
    w0 = plain.lm.layers[0].mlp.up_proj.weight
    w1 = noisy.lm.layers[0].mlp.up_proj.weight
    assert (w0 - w1).abs().max() > 0.01  # the noise is really there
    half = w1.shape[1] // 2
    assert not torch.allclose(w1[:, :half], w1[:, half:])  # input copies now differ
    again = grow_model(small, 2, noise=0.02, seed=3, grow_vision=True)
    assert torch.equal(again.lm.layers[0].mlp.up_proj.weight, w1)  # deterministic per seed
    # Noise that does not cancel would change the function: the cancellation is what keeps it.
    broken = grow_model(small, 2).eval()
    with torch.no_grad():
        broken.lm.layers[0].mlp.up_proj.weight.add_(torch.randn_like(w0) * 0.02)
    assert _max_diff(small, broken) > 1e-3


def test_grown_model_trains():
    big = grow_model(_model(), 2, noise=0.01).train()
    tokens, ims = _inputs()
    _, loss = big(tokens, ims, tokens)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in big.parameters())


def test_grow_cli_writes_a_loadable_checkpoint(tmp_path, capsys):
    small = _model()
    save_model(small, tmp_path / "small", {"tokenizer": "/somewhere/tokenizer.json"})
    rc = main(
        ["grow", str(tmp_path / "small"), "--width-factor", "2", "--out", str(tmp_path / "big")]
    )
    assert rc == 0
    info = json.loads(capsys.readouterr().out)
    assert info["d_model"] == 64 and info["params_after"] > info["params_before"]
    meta = json.loads((tmp_path / "big" / "config.json").read_text())
    assert meta["model"]["d_model"] == 64 and meta["model"]["n_heads"] == 8
    assert meta["tokenizer"] == "/somewhere/tokenizer.json"  # carried over for eval/training
    assert meta["grown_from"]["factor"] == 2
    big = load_model(tmp_path / "big").eval()
    assert _max_diff(small, big) <= 1e-4
    assert big.lm.lm_head.weight is big.lm.embed_tokens.weight
    assert not list(tmp_path.glob(".tmp-*"))


@pytest.mark.parametrize("bad", ["1.5", "two", "0"])
def test_non_integer_factor_is_a_one_line_error(tmp_path, capsys, bad):
    save_model(_model(), tmp_path / "small")
    rc = main(
        ["grow", str(tmp_path / "small"), "--width-factor", bad, "--out", str(tmp_path / "b")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "width factor" in err
    assert not (tmp_path / "b").exists()
    assert parse_factor("2") == parse_factor(2.0) == 2


def test_foreign_or_corrupt_checkpoint_is_a_one_line_error(tmp_path, capsys):
    save_model(_model(), tmp_path / "a")
    meta = json.loads((tmp_path / "a" / "config.json").read_text())
    (tmp_path / "a" / "config.json").write_text(
        json.dumps(meta | {"architecture": "LlamaForCausalLM"})
    )
    assert (
        main(["grow", str(tmp_path / "a"), "--width-factor", "2", "--out", str(tmp_path / "o")])
        == 2
    )
    err = capsys.readouterr().err
    assert "is not vloom-vlm" in err and err.count("\n") == 1
    save_model(_model(), tmp_path / "c")
    (tmp_path / "c" / "model.safetensors").write_bytes(b"\x00garbage" * 20)
    assert (
        main(["grow", str(tmp_path / "c"), "--width-factor", "2", "--out", str(tmp_path / "o")])
        == 2
    )
    err = capsys.readouterr().err
    assert "corrupt safetensors" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_a_failed_write_leaves_no_checkpoint(tmp_path, monkeypatch):
    save_model(_model(), tmp_path / "small")
    import vloom.model.grow as grow_mod

    def save_then_die(model, out_dir, extra=None):
        save_model(model, out_dir, extra)  # the weights land, then the process "dies"
        raise OSError("disk full")

    monkeypatch.setattr(grow_mod, "save_model", save_then_die)
    with pytest.raises(OSError, match="disk full"):
        grow_checkpoint(tmp_path / "small", tmp_path / "big", 2)
    assert not (tmp_path / "big").exists() and not list(tmp_path.glob(".tmp-*"))


def test_existing_output_is_not_overwritten(tmp_path):
    save_model(_model(), tmp_path / "small")
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        grow_checkpoint(tmp_path / "small", tmp_path / "big", 2)
    assert (tmp_path / "big" / "keep.txt").read_text() == "mine"


def test_grown_checkpoint_continues_training_with_init_from(tiny_data, tmp_path):
    """`vloom grow` output -> `train.init_from` trains the wide model: the architecture is read
    from the checkpoint (`model: {from: CKPT}`) or pasted from its model.yaml."""
    import json

    import yaml
    from tinyexp import tiny_config

    from vloom.config import dump_config
    from vloom.train import train
    from vloom.train.loop import build_model, read_packed_stats

    cfg = tiny_config()
    small = build_model(cfg, read_packed_stats(tiny_data["packed"]))
    save_model(small, tmp_path / "small")
    info = grow_checkpoint(tmp_path / "small", tmp_path / "big", 2, noise=0.01)
    section = yaml.safe_load((tmp_path / "big" / "model.yaml").read_text())["model"]
    assert section == info["model"] and section["d_model"] == 2 * cfg.model.d_model
    for model in ({"from": str(tmp_path / "big")}, section):  # model.from, or model.yaml pasted
        wide = tiny_config(model=model, train__steps=2, train__init_from=str(tmp_path / "big"))
        assert wide.model.model_dump(mode="json") == section
    run = tmp_path / "run"
    summary = train(wide, tiny_data["packed"], run, quiet=True)
    assert summary["params"] == info["params_after"] and summary["init_from"]
    meta = json.loads((run / "checkpoints" / "final" / "config.json").read_text())
    assert meta["model"] == section and dump_config(wide)["model"] == section


@pytest.mark.parametrize("noise", [0.0, 0.02])
def test_noise_is_what_lets_the_copies_learn_apart(noise):
    """Without noise every copy gets the same update, so the wide model stays the small one."""
    big = grow_model(_model(tie=False), 2, noise=noise).train()
    opt = torch.optim.AdamW(big.parameters(), lr=1e-2)
    w0 = big.lm.layers[1].mlp.gate_proj.weight.detach().clone()
    tokens, ims = _inputs()
    for _ in range(3):
        _, loss = big(tokens, ims, tokens)
        loss.backward()
        opt.step()
        opt.zero_grad()
    delta = big.lm.layers[1].mlp.gate_proj.weight.detach() - w0  # [2h, 2d]: output copies
    h = delta.shape[0] // 2
    assert delta.abs().max() > 1e-3  # it did learn
    same_update = torch.allclose(delta[:h], delta[h:], atol=1e-5)
    assert same_update == (noise == 0.0)


@pytest.mark.parametrize("grow_vision", [False, True])
def test_grown_vlm_matches_with_dynamic_resolution_vision(grow_vision):
    cfg = ModelConfig(
        d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, vision=VISION | {"resolution": "dynamic"}
    )
    torch.manual_seed(0)
    small = VLM(cfg, vocab_size=50, max_seq_len=32, image_size=16).eval()
    with torch.no_grad():
        for p in small.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    big = grow_model(small, 2, noise=0.01, grow_vision=grow_vision).eval()
    assert _max_diff(small, big) <= 1e-4
