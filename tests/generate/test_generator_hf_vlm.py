"""The hf backend on a VLM directory: a tiny vloom VLM with the transformers-shaped vision side
(SigLIP tower, LLaVA projector) exported as LlavaForConditionalGeneration answers image
requests as the vloom backend does on the same weights."""

from __future__ import annotations

import random

import pytest
import torch
from tinyexp import tiny_config

from vloom.generate.backends.hf import HFBackend
from vloom.generate.backends.vloom import VloomBackend
from vloom.generate.generator import Generator, Request
from vloom.model.hf_export import export_checkpoint
from vloom.model.io import build_model, save_model
from vloom.sequence import load_tokenizer
from vloom.synth.world import png_bytes, render, sample_scene

SIGLIP = {"d_model": 16, "n_layers": 2, "n_heads": 2, "patch_size": 8, "merge": 1,
          "arch": "siglip", "connector": "llava"}  # fmt: skip


@pytest.fixture(scope="module")
def llava_pair(tiny_data, tmp_path_factory):
    cfg = tiny_config(model__vision=SIGLIP)
    tok_path = tiny_data["packed"] / "tokenizer.json"
    torch.manual_seed(2)
    meta = {
        "model": cfg.model.model_dump(mode="json"),
        "vocab_size": load_tokenizer(str(tok_path)).get_vocab_size(),
        "max_seq_len": 128,
        "image_size": cfg.synth.image_size,
    }
    root = tmp_path_factory.mktemp("llava")
    save_model(build_model(meta).eval(), root / "ckpt", {"tokenizer": str(tok_path)})
    info = export_checkpoint(root / "ckpt", root / "hf", tok_path)
    assert info["architecture"] == "LlavaForConditionalGeneration"
    return VloomBackend(root / "ckpt", device="cpu"), HFBackend(root / "hf", "vloom", "cpu")


def test_llava_export_answers_image_requests_as_vloom(llava_pair):
    vloom_be, hf = llava_pair
    rng = random.Random(0)
    pngs = [png_bytes(render(sample_scene(rng), 32)) for _ in range(3)]
    reqs = [
        Request(prompt="What colour is the circle?", images=(pngs[0],), max_new_tokens=6),
        Request(prompt="How many objects?", images=(pngs[1], pngs[2]), max_new_tokens=6),
        Request(prompt="Describe it.", images=(pngs[2],), max_new_tokens=6, temperature=1.0),
        Request(prompt="No image here.", max_new_tokens=6),
    ]
    assert hf.vlm and hf.prompt(reqs[1])[0] == vloom_be.prompt(reqs[1])[0]
    a = Generator(vloom_be).generate(reqs)
    b = Generator(hf).generate(reqs)
    assert all(g.ok and g.text for g in a + b)
    assert [g.text for g in a] == [g.text for g in b]
    bad = Generator(hf).generate([Request(prompt="x", images=(b"not an image",))])
    assert bad[0].error == "backend_error"
