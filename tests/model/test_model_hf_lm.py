"""model.lm.init: a local HF Llama / Qwen2 LM and its tokenizer through pack, train, eval,
generation and export; logits parity with transformers before and after the vocab grows."""

import io
import json

import pytest
import torch

pytest.importorskip(
    "transformers", reason="transformers is an optional extra: pip install 'vloom[hf]'"
)
from hflm import hf_tokenizer, save_hf_lm  # noqa: E402
from tinyexp import tiny_raw  # noqa: E402

from vloom.config import config_from_dict  # noqa: E402
from vloom.doc import list_shards, read_shard  # noqa: E402
from vloom.model.vlm import VLM  # noqa: E402
from vloom.pack.hf_tokenizer import prepare_hf_tokenizer  # noqa: E402
from vloom.sequence import TokenLayout, load_tokenizer  # noqa: E402


def _raw(hf_dir, **model):
    raw = tiny_raw()
    raw["model"] = {"lm": {"init": str(hf_dir)}, "vision": raw["model"]["vision"], **model}
    return raw


def _ids(n_vocab, shape=(2, 40), seed=3):
    return torch.randint(0, n_vocab, shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("family", "pad", "extra"), [("llama", None, 0), ("qwen2", "</s>", 1)])
def test_lm_init_logits_match_transformers_after_the_vocab_grows(tmp_path, family, pad, extra):
    hf, tok = save_hf_lm(tmp_path / "hf", family, pad=pad, extra_rows=extra)
    cfg = config_from_dict(_raw(tmp_path / "hf"))
    assert cfg.model.d_model == 32 and cfg.model.n_heads == 4 and cfg.model.n_kv_heads == 2
    assert cfg.model.qkv_bias == (family == "qwen2")
    _, layout, vocab = prepare_hf_tokenizer(tmp_path / "hf", tmp_path / "tokenizer.json")
    rows = len(tok) + extra
    # <image> and <pad> (the tokenizer pads with eos, or not at all) follow its vocabulary
    assert (layout.pad, layout.image) == (len(tok), len(tok) + 1)
    assert layout.eos == tok.eos_token_id and layout.bos == tok.bos_token_id
    assert vocab == max(rows, len(tok) + 2)
    ours = VLM(cfg.model, vocab, 64, 32, layout=layout).eval()
    tokens = _ids(len(tok))
    with torch.no_grad():
        ref = hf(input_ids=tokens).logits  # [B, T, rows]
        got, _ = ours(tokens)
    assert got.shape[-1] == vocab
    assert (ref - got[..., :rows]).abs().max().item() <= 1e-4  # the original ids: unchanged
    old = hf.get_input_embeddings().weight
    new = ours.lm.embed_tokens.weight[rows:]
    assert torch.allclose(new, old.mean(0).expand_as(new), atol=1e-6)  # grown rows: the mean
    if family == "llama":  # untied: the head grows the same way
        head = ours.lm.lm_head.weight
        assert torch.allclose(head[rows:], hf.lm_head.weight.mean(0).expand_as(head[rows:]))


@pytest.fixture(scope="module")
def lm_run(tiny_data, tmp_path_factory):
    """tiny curated data packed with a Llama LM's tokenizer, trained 2 steps from its weights."""
    from vloom.pack import run_pack
    from vloom.train import train

    root = tmp_path_factory.mktemp("lm_init")
    hf, tok = save_hf_lm(root / "hf", "llama")
    raw = _raw(root / "hf")
    raw["train"] |= {"steps": 2, "checkpoint_every": 2}
    cfg = config_from_dict(raw)
    stats = run_pack(tiny_data["curated"], root / "packed", cfg, quiet=True)
    train(cfg, root / "packed", root / "run", quiet=True)
    return {"root": root, "hf": hf, "tok": tok, "stats": stats, "cfg": cfg}


def test_pack_tokenizes_with_the_lm_tokenizer(lm_run, tiny_data):
    from safetensors.numpy import load_file

    tok, stats, packed = lm_run["tok"], lm_run["stats"], lm_run["root"] / "packed"
    layout = TokenLayout.from_json(stats["token_layout"])
    assert layout == TokenLayout(pad=len(tok), bos=0, eos=1, image=len(tok) + 1)
    assert json.loads((packed / "stats.json").read_text())["vocab_size"] == len(tok) + 2
    assert load_tokenizer(str(packed / "tokenizer.json"), layout).get_vocab_size() == len(tok) + 2
    # the first text-only document opens the text stream, tokenized as transformers does
    doc = next(
        d
        for s in list_shards(tiny_data["curated"])
        for d in read_shard(s)
        if not any(im is not None for im in d.images)
    )
    first = [t for t in doc.texts if t is not None][0]
    want = tok(first).input_ids  # <s> + ids: Llama's post-processor adds bos
    row = load_file(str(packed / "text-00000.safetensors"))["tokens"][0]
    n = min(len(want), len(row))  # a long document continues into the next row
    assert row[:n].tolist() == want[:n] and n > 8
    image_rows = load_file(str(packed / "image-00000.safetensors"))["tokens"]
    assert int((image_rows == layout.image).sum()) % 4 == 0 and (image_rows == layout.image).any()
    assert int(image_rows.max()) < stats["vocab_size"]


def test_eval_export_and_generate_share_the_tokenizer(lm_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vloom.evaluate.harness import load_checkpoint
    from vloom.generate import sample
    from vloom.model.hf_export import export_checkpoint

    ckpt = lm_run["root"] / "run" / "checkpoints" / "final"
    model, vtok = load_checkpoint(ckpt)
    layout = model.layout
    assert layout == TokenLayout.from_json(lm_run["stats"]["token_layout"])
    info = export_checkpoint(ckpt, tmp_path / "hf_out")
    assert info["architecture"] == "LlamaForCausalLM"
    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf_out")).eval()
    htok = AutoTokenizer.from_pretrained(str(tmp_path / "hf_out"))
    assert (htok.bos_token_id, htok.eos_token_id, htok.pad_token_id) == (0, 1, layout.pad)
    assert htok.convert_tokens_to_ids("<image>") == layout.image
    prompt = "A red circle sits"
    ids = layout.prefix + vtok.encode(prompt, add_special_tokens=False).ids
    assert htok(prompt).input_ids == ids  # the exported tokenizer encodes as vloom does
    n = 8
    ours = sample(model, vtok, [ids], [None], torch.device("cpu"), max_new_tokens=n)[0].tokens
    with torch.no_grad():
        out = hf.generate(
            torch.tensor([ids]),
            max_new_tokens=n,
            do_sample=False,
            suppress_tokens=[layout.pad, layout.image],  # vloom never emits placeholders
            pad_token_id=layout.pad,
        )[0, len(ids) :].tolist()
    if layout.eos in out:  # vloom stops at eos without emitting it
        out = out[: out.index(layout.eos)]
    assert out == ours and len(ours) > 0


def test_lm_init_bad_inputs_are_one_line_errors(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(
        GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=50, n_positions=32)
    ).save_pretrained(str(tmp_path / "gpt2"))
    with pytest.raises(ValueError, match=r"gpt2/config.json: model_type 'gpt2' is not supported"):
        config_from_dict(_raw(tmp_path / "gpt2"))

    save_hf_lm(tmp_path / "hf", "llama")
    with pytest.raises(ValueError, match=r"model\.d_model=64 \(.*config.json: 32\)") as e:
        config_from_dict(_raw(tmp_path / "hf", d_model=64, n_layers=2))
    assert "\n" not in str(e.value) and "n_layers" not in str(e.value)  # 2 agrees

    hf_tokenizer(vocab_size=340).save_pretrained(str(tmp_path / "hf"))  # not these weights
    with pytest.raises(ValueError, match=r"tokenizer.json has 3\d\d tokens but .*config.json"):
        prepare_hf_tokenizer(tmp_path / "hf", tmp_path / "out.json")

    (tmp_path / "hf" / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"hf/tokenizer.json: not found"):
        prepare_hf_tokenizer(tmp_path / "hf", tmp_path / "out.json")


def test_pack_cli_names_a_missing_tokenizer(tmp_path, tiny_data, capsys):
    import yaml

    from vloom.cli import main

    save_hf_lm(tmp_path / "hf", "llama")
    (tmp_path / "hf" / "tokenizer.json").unlink()
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_raw(tmp_path / "hf")))
    capsys.readouterr()
    args = ["pack", str(tiny_data["curated"]), "--out", str(tmp_path / "p")]
    assert main([*args, "--config", str(tmp_path / "c.yaml"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "tokenizer.json: not found" in err and err.count("\n") == 1
    assert not (tmp_path / "p").exists()


def test_qwen2_lm_init_vlm_exports_as_llava_that_generates_as_vloom(tmp_path):
    """A Qwen2 LM (no bos, pad = eos) + a SigLIP-shaped tower: LlavaForConditionalGeneration
    with the tokenizer's <image> id, its processor giving vloom's ids, greedy = vloom's."""
    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from vloom.generate import sample
    from vloom.model import save_model
    from vloom.model.hf_export import export_checkpoint
    from vloom.pack.images import prepare_image
    from vloom.sequence import encode_items

    save_hf_lm(tmp_path / "hf", "qwen2", pad="</s>")
    vision = {"arch": "siglip", "connector": "llava", "merge": 1, "patch_size": 4}
    raw = _raw(tmp_path / "hf") | {"pack": {"image_size": 16}}
    raw["model"]["vision"] = vision | {"d_model": 16, "n_layers": 1, "n_heads": 2}
    cfg = config_from_dict(raw)
    tok, layout, vocab = prepare_hf_tokenizer(tmp_path / "hf", tmp_path / "tokenizer.json")
    assert layout.bos is None and layout.prefix == []
    m = VLM(cfg.model, vocab, 64, 16, layout=layout).eval()
    save_model(m, tmp_path / "ck", {"tokenizer": str(tmp_path / "tokenizer.json")})
    info = export_checkpoint(tmp_path / "ck", tmp_path / "out")
    assert info["architecture"] == "LlavaForConditionalGeneration"
    hf = LlavaForConditionalGeneration.from_pretrained(str(tmp_path / "out")).eval()
    assert hf.config.image_token_id == layout.image
    proc = AutoProcessor.from_pretrained(str(tmp_path / "out"))
    buf = io.BytesIO()
    px = torch.randint(0, 256, (20, 30, 3), dtype=torch.uint8, generator=torch.Generator())
    Image.fromarray(px.numpy()).save(buf, "PNG")
    items = ["A red circle", None, "on a mat"]
    ids = encode_items(tok, items, m.tokens_per_image, eos=False, layout=layout)
    pixels = torch.from_numpy(prepare_image(buf.getvalue(), m.vision.cfg, 16)[0])[None]
    inputs = proc(
        text=["A red circle<image>on a mat"], images=[Image.open(buf)], return_tensors="pt"
    )
    assert inputs["input_ids"][0].tolist() == ids
    n = 6
    ours = sample(m, tok, [ids], [pixels], torch.device("cpu"), max_new_tokens=n)[0].tokens
    with torch.no_grad():
        out = hf.generate(
            **inputs,
            max_new_tokens=n,
            do_sample=False,
            suppress_tokens=[layout.pad, layout.image],
            pad_token_id=layout.pad,
        )[0, len(ids) :].tolist()
    if layout.eos in out:
        out = out[: out.index(layout.eos)]
    assert out == ours and len(ours) > 0


def test_sweep_data_key_follows_the_lm_tokenizer(tmp_path):
    from vloom.sweep.data import data_settings

    save_hf_lm(tmp_path / "a", "llama")
    save_hf_lm(tmp_path / "b", "llama", seed=1)
    own = config_from_dict(tiny_raw())
    a, b = (config_from_dict(_raw(tmp_path / d)) for d in "ab")
    assert "model.lm" not in data_settings(own, None)  # the world's key is what it was
    assert data_settings(a, None) != data_settings(b, None)  # packed with another tokenizer


def test_grown_lm_init_checkpoint_keeps_the_tokenizer_not_the_sizes(lm_run, tiny_data, tmp_path):
    """grow drops lm.init (its sizes no longer hold) but keeps its tokenizer: `model: {from:
    GROWN}` validates, and packing with it gives the grown checkpoint's vocabulary."""
    from vloom.model import load_model
    from vloom.model.grow import grow_checkpoint
    from vloom.pack import run_pack

    hf_dir = lm_run["cfg"].model.lm.init
    grow_checkpoint(lm_run["root"] / "run" / "checkpoints" / "final", tmp_path / "big", 2)
    big = load_model(tmp_path / "big")
    assert big.layout == TokenLayout.from_json(lm_run["stats"]["token_layout"])
    raw = tiny_raw()
    raw["model"] = {"from": str(tmp_path / "big")}
    raw["train"]["init_from"] = str(tmp_path / "big")
    cfg = config_from_dict(raw)
    assert cfg.model.d_model == 64 and cfg.model.lm.init is None
    assert cfg.model.lm.tokenizer == hf_dir
    stats = run_pack(tiny_data["curated"], tmp_path / "packed", cfg, quiet=True)
    assert stats["vocab_size"] == big.lm.vocab_size
    assert stats["token_layout"] == lm_run["stats"]["token_layout"]
    # model.lm.tokenizer alone: a model of the user's sizes, from scratch, on that tokenizer
    scratch = config_from_dict(tiny_raw(model__lm__tokenizer=hf_dir))
    assert scratch.model.d_model == 32 and scratch.model.lm.tokenizer_dir == hf_dir
