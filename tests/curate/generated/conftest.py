"""A random tiny vloom checkpoint over the tiny world's tokenizer: the generator the
model-in-the-loop steps run with in tests (real generation, poor text)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from tinyexp import tiny_config

from vloom.model.io import build_model, save_model
from vloom.sequence import load_tokenizer


@pytest.fixture(scope="session")
def world_gen(tiny_data, tmp_path_factory) -> SimpleNamespace:
    """.spec: a generator config for the checkpoint (context 256 tokens, the demo's); .world: the tiny
    world (`vloom synth` output)."""
    cfg = tiny_config()
    tok_path = tiny_data["packed"] / "tokenizer.json"
    torch.manual_seed(2)
    meta = {
        "model": cfg.model.model_dump(mode="json"),
        "vocab_size": load_tokenizer(str(tok_path)).get_vocab_size(),
        "max_seq_len": 256,
        "image_size": cfg.synth.image_size,
    }
    ckpt = tmp_path_factory.mktemp("p1gen") / "ckpt"
    save_model(build_model(meta).eval(), ckpt, {"tokenizer": str(tok_path)})
    spec = {"backend": "vloom", "path": str(ckpt), "device": "cpu", "batch_size": 8}
    return SimpleNamespace(spec=spec, world=tiny_data["synth"], ckpt=ckpt)
