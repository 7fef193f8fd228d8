"""Export to transformers: from_pretrained loads, logits and tokenization match vloom."""

import io
import json

import pytest
import torch

pytest.importorskip(
    "transformers", reason="transformers is an optional extra: pip install 'vloom[hf]'"
)
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from vloom.cli import main  # noqa: E402
from vloom.config import ModelConfig  # noqa: E402
from vloom.model import VLM, load_model, save_model  # noqa: E402
from vloom.model.hf_export import export_checkpoint, inputs_embeds, load_image_encoder  # noqa: E402
from vloom.pack.tokenizer import train_tokenizer  # noqa: E402
from vloom.sequence import IMAGE_ID, encode_text  # noqa: E402

TEXTS = [
    "A red circle sits left of a blue square.",
    "Two green triangles and one yellow star, near the top.",
    "The quick brown fox jumps over the lazy dog; naïve café déjà vu 123.",
] * 20
SAMPLES = [
    "A blue circle!",
    "  spaces\tand\nnewlines ",
    "naïve café 42 <image> <bos>",
    "zqxj unseen",
]


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    train_tokenizer(TEXTS, 300, path)
    return path


def _ckpt(path, tokenizer_file, seed=0, vision=None, **model):
    from vloom.sequence import load_tokenizer

    vocab = load_tokenizer(str(tokenizer_file)).get_vocab_size()
    cfg = ModelConfig(
        d_model=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        rope_theta=500.0,
        norm_eps=1e-5,
        vision=vision or {"d_model": 16, "n_layers": 1, "n_heads": 2, "patch_size": 4, "merge": 2},
        **model,
    )
    torch.manual_seed(seed)
    m = VLM(cfg, vocab_size=vocab + 5, max_seq_len=64, image_size=16).eval()
    with torch.no_grad():  # off the init: non-unit norms, non-zero biases
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    save_model(m, path, {"tokenizer": str(tokenizer_file)})
    return m


def _tokens(vocab, images=False):
    g = torch.Generator().manual_seed(2)
    t = torch.randint(4, vocab, (2, 40), generator=g)
    if images:
        t[0, 5:9] = IMAGE_ID
        t[1, 20:24] = IMAGE_ID
        return t, torch.randint(0, 256, (2, 16, 16, 3), dtype=torch.uint8, generator=g)
    return t, None


@pytest.mark.parametrize(
    "model_kw,arch",
    [
        ({}, "LlamaForCausalLM"),
        ({"tie_embeddings": False}, "LlamaForCausalLM"),
        ({"qkv_bias": True}, "Qwen2ForCausalLM"),
    ],
)
def test_exported_lm_logits_match(tmp_path, tokenizer_file, model_kw, arch):
    m = _ckpt(tmp_path / "ck", tokenizer_file, **model_kw)
    info = export_checkpoint(tmp_path / "ck", tmp_path / "hf")
    assert info["architecture"] == arch
    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf")).eval()
    assert type(hf).__name__ == arch
    tokens, _ = _tokens(m.lm.vocab_size)
    with torch.no_grad():
        ours, _ = m(tokens)
        theirs = hf(input_ids=tokens).logits
    assert (ours - theirs).abs().max().item() <= 1e-4
    assert hf.config.rms_norm_eps == 1e-5 and hf.config.num_key_value_heads == 2


def test_exported_vlm_with_images_matches(tmp_path, tokenizer_file):
    m = _ckpt(tmp_path / "ck", tokenizer_file)
    export_checkpoint(tmp_path / "ck", tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf")).eval()
    enc = load_image_encoder(tmp_path / "hf")
    tokens, images = _tokens(m.lm.vocab_size, images=True)
    with torch.no_grad():
        ours, _ = m(tokens, images)
        theirs = hf(inputs_embeds=inputs_embeds(hf, enc, tokens, images)).logits
        blind = hf(input_ids=tokens).logits  # without the images the logits differ
    assert (ours - theirs).abs().max().item() <= 1e-4
    assert (ours - blind).abs().max().item() > 1e-3


def test_exported_tokenizer_encodes_identically(tmp_path, tokenizer_file):
    _ckpt(tmp_path / "ck", tokenizer_file)
    export_checkpoint(tmp_path / "ck", tmp_path / "hf")
    hf_tok = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    from vloom.sequence import load_tokenizer

    ours = load_tokenizer(str(tokenizer_file))
    for s in SAMPLES + TEXTS[:3]:
        assert hf_tok.encode(s, add_special_tokens=False) == encode_text(ours, s)
        assert hf_tok(s)["input_ids"] == encode_text(ours, s)
    assert hf_tok.bos_token_id == 1 and hf_tok.eos_token_id == 2 and hf_tok.pad_token_id == 0
    assert hf_tok.convert_tokens_to_ids("<image>") == IMAGE_ID


def test_export_cli_and_bad_input(tmp_path, tokenizer_file, capsys):
    _ckpt(tmp_path / "ck", tokenizer_file)
    assert main(["export", str(tmp_path / "ck"), "--out", str(tmp_path / "hf")]) == 0
    assert json.loads(capsys.readouterr().out)["architecture"] == "LlamaForCausalLM"
    assert (tmp_path / "hf" / "tokenizer.json").exists()
    assert not list(tmp_path.glob(".tmp-*"))
    # a corrupt checkpoint: one line, nothing written
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"nope" * 8)
    assert main(["export", str(tmp_path / "ck"), "--out", str(tmp_path / "hf2")]) == 2
    err = capsys.readouterr().err
    assert "corrupt safetensors" in err and err.count("\n") == 1
    assert not (tmp_path / "hf2").exists()
    # a tokenizer path that does not exist
    _ckpt(tmp_path / "ck3", tokenizer_file)
    rc = main(
        [
            "export",
            str(tmp_path / "ck3"),
            "--out",
            str(tmp_path / "hf3"),
            "--tokenizer",
            str(tmp_path / "none.json"),
        ]
    )
    assert rc == 2 and "tokenizer not found" in capsys.readouterr().err


def test_exported_dynamic_resolution_vlm_matches(tmp_path, tokenizer_file):
    vision = {"d_model": 16, "n_layers": 1, "n_heads": 2, "patch_size": 4, "merge": 2}
    m = _ckpt(tmp_path / "ck", tokenizer_file, vision=vision | {"resolution": "dynamic"})
    export_checkpoint(tmp_path / "ck", tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf")).eval()
    enc = load_image_encoder(tmp_path / "hf")
    tokens, images = _tokens(m.lm.vocab_size, images=True)
    with torch.no_grad():
        ours, _ = m(tokens, images)
        theirs = hf(inputs_embeds=inputs_embeds(hf, enc, tokens, images)).logits
    assert (ours - theirs).abs().max().item() <= 1e-4


SIGLIP = {
    "d_model": 16,
    "n_layers": 2,
    "n_heads": 2,
    "patch_size": 4,
    "merge": 1,
    "arch": "siglip",
    "connector": "llava",
}


def _llava_inputs(m, tokens, images):
    """What LLaVA is fed for vloom's (tokens, images): the same ids (each image already
    expanded to tokens_per_image copies of <image>) and the exact float NCHW tensor vloom's
    encoder computes from the uint8 pixels."""
    from vloom.model.vision import PIXEL_SCALE

    pixel_values = images.permute(0, 3, 1, 2).float() / PIXEL_SCALE - 1.0
    return {"input_ids": tokens, "pixel_values": pixel_values}


@pytest.mark.parametrize("model_kw", [{}, {"tie_embeddings": False}, {"qkv_bias": True}])
def test_siglip_vlm_exports_as_llava_with_matching_logits(tmp_path, tokenizer_file, model_kw):
    from transformers import LlavaForConditionalGeneration

    m = _ckpt(tmp_path / "ck", tokenizer_file, vision=SIGLIP, **model_kw)
    assert m.tokens_per_image == 16 and not hasattr(m.connector, "slot_embed")
    info = export_checkpoint(tmp_path / "ck", tmp_path / "hf")
    assert info["architecture"] == "LlavaForConditionalGeneration"
    assert not (tmp_path / "hf" / "vision.safetensors").exists()
    hf, load = LlavaForConditionalGeneration.from_pretrained(
        str(tmp_path / "hf"), output_loading_info=True
    )
    hf.eval()
    assert not any(load.values()), load  # every weight written, none missing or unexpected
    c = hf.config
    assert c.image_token_id == IMAGE_ID and c.image_seq_length == 16
    assert c.vision_feature_select_strategy == "full" and c.vision_feature_layer == -1
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(4, m.lm.vocab_size, (2, 48), generator=g)
    tokens[0, 3:19] = IMAGE_ID  # one image in row 0, two in row 1
    tokens[1, 1:17] = IMAGE_ID
    tokens[1, 25:41] = IMAGE_ID
    images = torch.randint(0, 256, (3, 16, 16, 3), dtype=torch.uint8, generator=g)
    with torch.no_grad():
        ours, _ = m(tokens, images)
        theirs = hf(**_llava_inputs(m, tokens, images)).logits
        swapped = hf(**_llava_inputs(m, tokens, images.flip(0))).logits
    assert theirs.shape == ours.shape
    assert (ours - theirs).abs().max().item() <= 1e-4
    assert (ours - swapped).abs().max().item() > 1e-3  # the images matter, in order


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_siglip_arch_trains_and_the_trained_vlm_matches_as_llava(tmp_path):
    """synth -> pack -> train with the siglip/llava options (the loss goes down), then the
    trained checkpoint exported as LLaVA gives vloom's logits on real packed rows."""
    from tinyexp import tiny_config
    from transformers import LlavaForConditionalGeneration

    from vloom.pack import PackedStream, run_pack
    from vloom.synth import generate
    from vloom.train import train
    from vloom.train.batches import to_micro

    cfg = tiny_config(
        model__vision={**SIGLIP, "d_model": 32, "patch_size": 8},
        synth__n_interleaved=16,
        synth__n_pairs=40,
        synth__n_text=10,
        train__steps=14,
        train__warmup_steps=2,
        train__log_every=1,
        train__checkpoint_every=100,
        train__image_start_fraction=0.0,
        train__image_text_ratio=1.0,
    )
    generate(cfg.synth, tmp_path / "synth", cfg.seed)
    run_pack(tmp_path / "synth" / "train", tmp_path / "packed", cfg, quiet=True)
    out = tmp_path / "run"
    train(cfg, tmp_path / "packed", out, quiet=True)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) >= 10 and sum(r["image_frac"] for r in rows if "loss" in r) > 0
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.3  # it learns

    ckpt = out / "checkpoints" / "final"
    m = load_model(ckpt).eval()
    assert m.tokens_per_image == 16  # 32 px / 8 px patches, no merge
    s = PackedStream(tmp_path / "packed", "image", 0)
    micro = to_micro([s.row(r) for r in range(len(s)) if len(s.row(r)[1])][:4], pin=False)
    assert micro.images is not None and len(micro.images) >= 4

    info = export_checkpoint(ckpt, tmp_path / "hf")
    assert info["architecture"] == "LlavaForConditionalGeneration" and info["tokenizer"]
    hf = LlavaForConditionalGeneration.from_pretrained(str(tmp_path / "hf")).eval()
    with torch.no_grad():
        ours, _ = m(micro.inputs, micro.images)
        theirs = hf(**_llava_inputs(m, micro.inputs, micro.images)).logits
    assert (ours - theirs).abs().max().item() <= 1e-4

    # transformers' own generate() continues an image prompt as vloom's greedy argmax does.
    row = micro.inputs[0]
    end = int((row == IMAGE_ID).nonzero().max()) + 4  # the prompt ends 3 tokens past an image
    prompt = row[None, :end]
    n_img = int((prompt == IMAGE_ID).sum()) // m.tokens_per_image
    ims = micro.images[:n_img]
    ids = prompt
    with torch.no_grad():
        for _ in range(6):
            nxt = m(ids, ims)[0][:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], 1)
        gen = hf.generate(
            **_llava_inputs(m, prompt, ims), max_new_tokens=6, do_sample=False, eos_token_id=None
        )
    assert gen[0, end:].tolist() == ids[0, end:].tolist()
    assert (
        AutoTokenizer.from_pretrained(str(tmp_path / "hf")).convert_tokens_to_ids("<image>")
        == hf.config.image_token_id
    )

    # The exported image processor makes, from a raw synth image (any size), vloom's pixels.
    from PIL import Image
    from transformers.models.siglip import SiglipImageProcessorPil

    from vloom.doc import list_shards, read_documents
    from vloom.pack.images import prepare_image

    proc = SiglipImageProcessorPil.from_pretrained(str(tmp_path / "hf"))
    docs = read_documents(list_shards(tmp_path / "synth" / "train")[0])
    pil = Image.open(io.BytesIO(next(im for d in docs for im in d.images if im)))
    pil = pil.convert("RGB").resize((pil.width + 7, pil.height - 5))  # not a 32 px square
    buf = io.BytesIO()
    pil.save(buf, "PNG")
    pixels, n_tok = prepare_image(buf.getvalue(), m.vision.cfg, m.vision.image_size)
    ours_px = _llava_inputs(m, None, torch.from_numpy(pixels)[None])["pixel_values"]
    theirs_px = proc(images=Image.open(buf), return_tensors="pt")["pixel_values"]
    assert n_tok == 16 and theirs_px.shape == ours_px.shape == (1, 3, 32, 32)
    assert (theirs_px - ours_px).abs().max().item() <= 1e-6


def test_non_llava_vision_keeps_the_vloom_loader_and_says_why(tmp_path, tokenizer_file):
    # siglip blocks but 2x2 merge + slot embeddings: not LLaVA; the loader export still matches
    m = _ckpt(tmp_path / "ck", tokenizer_file, vision=SIGLIP | {"merge": 2, "connector": "vloom"})
    info = export_checkpoint(tmp_path / "ck", tmp_path / "hf")
    assert info["architecture"] == "LlamaForCausalLM" and info["vision"] == "vision.safetensors"
    assert "arch: siglip, connector: llava, merge: 1" in info["note"]
    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf")).eval()
    tokens, images = _tokens(m.lm.vocab_size, images=True)
    with torch.no_grad():
        ours, _ = m(tokens, images)
        theirs = hf(
            inputs_embeds=inputs_embeds(hf, load_image_encoder(tmp_path / "hf"), tokens, images)
        ).logits
    assert (ours - theirs).abs().max().item() <= 1e-4
    # the default vision side says so too
    _ckpt(tmp_path / "ck2", tokenizer_file)
    assert "vloom's own" in export_checkpoint(tmp_path / "ck2", tmp_path / "hf2")["note"]


def test_siglip_arch_rejects_dynamic_resolution():
    with pytest.raises(ValueError, match="siglip has learned absolute positions"):
        ModelConfig(vision=SIGLIP | {"resolution": "dynamic"})


def test_llava_export_processor_turns_raw_text_and_images_into_vloom_inputs(
    tmp_path, tokenizer_file
):
    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from vloom.pack.images import prepare_image
    from vloom.sequence import encode_items, load_tokenizer

    m = _ckpt(tmp_path / "ck", tokenizer_file, vision=SIGLIP)
    export_checkpoint(tmp_path / "ck", tmp_path / "hf")
    proc = AutoProcessor.from_pretrained(str(tmp_path / "hf"))
    hf = LlavaForConditionalGeneration.from_pretrained(str(tmp_path / "hf")).eval()
    rng = torch.Generator().manual_seed(4)
    pngs = []
    for w, h in [(23, 40), (16, 16), (64, 9)]:  # any size, resized to the 16 px square
        buf = io.BytesIO()
        px = torch.randint(0, 256, (h, w, 3), dtype=torch.uint8, generator=rng).numpy()
        Image.fromarray(px).save(buf, "PNG")
        pngs.append(buf.getvalue())
    items = ["A red circle", None, "left of", None, None, "it."]
    ids = encode_items(load_tokenizer(str(tokenizer_file)), items, m.tokens_per_image)
    pixels = torch.stack(
        [torch.from_numpy(prepare_image(b, m.vision.cfg, m.vision.image_size)[0]) for b in pngs]
    )
    text = "<bos>" + "".join("<image>" if it is None else it for it in items) + "<eos>"
    inputs = proc(
        text=[text], images=[Image.open(io.BytesIO(b)) for b in pngs], return_tensors="pt"
    )
    assert inputs["input_ids"][0].tolist() == ids
    ours_in = _llava_inputs(m, torch.tensor([ids]), pixels)
    assert (inputs["pixel_values"] - ours_in["pixel_values"]).abs().max().item() <= 1e-6
    with torch.no_grad():
        ours, _ = m(torch.tensor([ids]), pixels)
        theirs = hf(**inputs).logits
    assert (ours - theirs).abs().max().item() <= 1e-4
