"""Import from local transformers checkpoints (Llama, SmolLM-shaped Llama, Qwen2): logits parity."""

import json

import pytest
import torch

pytest.importorskip(
    "transformers", reason="transformers is an optional extra: pip install 'vloom[hf]'"
)
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)  # noqa: E402

from vloom.cli import main  # noqa: E402
from vloom.model import load_model  # noqa: E402
from vloom.model.hf_import import import_model  # noqa: E402
from vloom.sequence import IMAGE_ID  # noqa: E402

SIZES = dict(
    vocab_size=96,
    hidden_size=32,
    intermediate_size=88,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
)


def _save(model_cls, config, path, seed=0):
    torch.manual_seed(seed)
    m = model_cls(config).eval()
    with torch.no_grad():  # non-trivial norms and biases, as in a trained model
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    m.save_pretrained(str(path))
    return m


def _tokens():
    g = torch.Generator().manual_seed(3)
    return torch.randint(IMAGE_ID + 1, SIZES["vocab_size"], (2, 48), generator=g)


CASES = {
    "llama": (
        LlamaForCausalLM,
        lambda: LlamaConfig(
            **SIZES,
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 500.0},
        ),
    ),
    "smollm": (
        LlamaForCausalLM,
        lambda: LlamaConfig(
            **SIZES,
            rms_norm_eps=1e-5,
            tie_word_embeddings=True,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        ),
    ),
    "qwen2": (
        Qwen2ForCausalLM,
        lambda: Qwen2Config(
            **SIZES,
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6},
        ),
    ),
}


@pytest.mark.parametrize("family", sorted(CASES))
def test_imported_logits_match(tmp_path, family):
    cls, make = CASES[family]
    hf = _save(cls, make(), tmp_path / "hf")
    ours, _ = import_model(tmp_path / "hf")
    assert ours.cfg.qkv_bias == (family == "qwen2")
    tokens = _tokens()
    with torch.no_grad():
        ref = hf(input_ids=tokens).logits
        got, _ = ours(tokens)
    assert (ref - got).abs().max().item() <= 1e-4


def test_import_cli_writes_a_checkpoint_that_loads(tmp_path, capsys):
    cls, make = CASES["qwen2"]
    hf = _save(cls, make(), tmp_path / "hf")
    assert (
        main(
            ["import-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "ck"), "--image-size", "16"]
        )
        == 0
    )
    info = json.loads(capsys.readouterr().out)
    assert info["model_type"] == "qwen2" and not info["hf_tokenizer"] and not info["tokenizer"]
    meta = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert meta["architecture"] == "vloom-vlm" and meta["model"]["qkv_bias"] is True
    assert meta["image_size"] == 16 and meta["max_seq_len"] == 64
    assert meta["model"]["lm"]["init"] is None  # no tokenizer: the HF vocabulary as it is
    m = load_model(tmp_path / "ck").eval()
    tokens = _tokens()
    with torch.no_grad():
        assert (hf(input_ids=tokens).logits - m(tokens)[0]).abs().max().item() <= 1e-4


def test_imported_checkpoint_with_its_tokenizer_continues_with_init_from(tmp_path, tiny_data):
    """import-hf, then `model: {from: CKPT}` + `train.init_from: CKPT`: pack uses the LM's
    tokenizer, so the packed vocabulary is the checkpoint's and its weights load."""
    from hflm import save_hf_lm
    from tinyexp import tiny_raw

    from vloom.config import config_from_dict
    from vloom.model.hf_import import import_checkpoint
    from vloom.pack import run_pack
    from vloom.sequence import TokenLayout
    from vloom.train import train

    hf, tok = save_hf_lm(tmp_path / "hf", "llama")
    info = import_checkpoint(tmp_path / "hf", tmp_path / "ck", max_seq_len=64)
    layout = TokenLayout.from_json(info["token_layout"])
    assert layout == TokenLayout(pad=len(tok), bos=0, eos=1, image=len(tok) + 1)
    m = load_model(tmp_path / "ck").eval()
    assert m.layout == layout and m.lm.vocab_size == len(tok) + 2
    ids = torch.randint(0, len(tok), (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # the original ids' logits: the HF model's
        assert (hf(input_ids=ids).logits - m(ids)[0][..., : len(tok)]).abs().max() <= 1e-4
    raw = tiny_raw()
    raw["model"] = {"from": str(tmp_path / "ck")}
    raw["pack"]["image_size"] = m.vision.image_size
    raw["train"] |= {"steps": 2, "checkpoint_every": 2, "init_from": str(tmp_path / "ck")}
    cfg = config_from_dict(raw)
    assert cfg.model.lm.init == str((tmp_path / "hf").resolve())
    stats = run_pack(tiny_data["curated"], tmp_path / "packed", cfg, quiet=True)
    assert stats["vocab_size"] == m.lm.vocab_size and stats["token_layout"] == info["token_layout"]
    summary = train(cfg, tmp_path / "packed", tmp_path / "run", quiet=True)
    assert summary["init_from"] == str(tmp_path / "ck")


def test_unsupported_architecture_names_the_model_type(tmp_path, capsys):
    GPT2LMHeadModel(
        GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=50, n_positions=32)
    ).save_pretrained(str(tmp_path / "gpt2"))
    capsys.readouterr()  # drop save_pretrained's own progress output
    assert main(["import-hf", str(tmp_path / "gpt2"), "--out", str(tmp_path / "ck")]) == 2
    err = capsys.readouterr().err
    assert "model_type 'gpt2' is not supported" in err and err.count("\n") == 1
    assert not (tmp_path / "ck").exists()


def test_bad_hf_directories_are_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        import_model(tmp_path)
    cls, make = CASES["llama"]
    _save(cls, make(), tmp_path / "hf")
    (tmp_path / "hf" / "model.safetensors").write_bytes(b"\x01" * 40)
    with pytest.raises(ValueError, match="corrupt safetensors"):
        import_model(tmp_path / "hf")
    (tmp_path / "hf" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no \\*.safetensors"):
        import_model(tmp_path / "hf")
    scaled = make()
    scaled.rope_parameters = {"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}
    _save(cls, scaled, tmp_path / "scaled")
    with pytest.raises(ValueError, match="RoPE scaling 'linear'"):
        import_model(tmp_path / "scaled")
    meta = json.loads((tmp_path / "scaled" / "config.json").read_text())
    meta["rope_parameters"] = {"rope_type": "default", "rope_theta": 500.0}
    meta["hidden_size"] = 64  # config no longer matches the weights
    meta["head_dim"] = 16
    (tmp_path / "scaled" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="config.json implies"):
        import_model(tmp_path / "scaled")


def test_import_grow_export_round_trip_keeps_the_function(tmp_path):
    """SmolLM-shaped HF model -> vloom -> HyperCloned x2 -> transformers: same logits throughout."""
    from transformers import AutoModelForCausalLM

    from vloom.model.grow import grow_checkpoint
    from vloom.model.hf_export import export_checkpoint
    from vloom.model.hf_import import import_checkpoint

    cls, make = CASES["smollm"]
    hf = _save(cls, make(), tmp_path / "hf")
    import_checkpoint(tmp_path / "hf", tmp_path / "ck", image_size=16)
    grow_checkpoint(tmp_path / "ck", tmp_path / "big", 2, noise=0.01)
    export_checkpoint(tmp_path / "big", tmp_path / "hf_big")
    big = AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf_big")).eval()
    assert big.config.hidden_size == 64 and big.config.num_attention_heads == 8
    tokens = _tokens()
    with torch.no_grad():
        assert (hf(input_ids=tokens).logits - big(input_ids=tokens).logits).abs().max() <= 1e-4
