"""Generation fixtures: a randomly initialised tiny VLM and the tiny run's tokenizer."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from tinyexp import tiny_config

from vloom.model.io import build_model
from vloom.sequence import load_tokenizer


@pytest.fixture(scope="session")
def tiny_vlm(tiny_data) -> SimpleNamespace:
    cfg = tiny_config()
    tok = load_tokenizer(str(tiny_data["packed"] / "tokenizer.json"))
    torch.set_num_threads(1)  # a loaded shared CPU: one thread per process runs steadier
    torch.manual_seed(0)
    meta = {
        "model": cfg.model.model_dump(mode="json"),
        "vocab_size": tok.get_vocab_size(),
        "max_seq_len": 96,
        "image_size": cfg.synth.image_size,
    }
    return SimpleNamespace(model=build_model(meta).eval(), tok=tok)


@pytest.fixture(scope="session")
def gen_ckpt(tiny_data, tmp_path_factory):
    """A random tiny vloom checkpoint (context 128) naming the tiny run's tokenizer, for the
    generator's backends; `.hf`: the same weights exported for transformers."""
    from vloom.model.hf_export import export_checkpoint
    from vloom.model.io import save_model

    cfg = tiny_config()
    tok_path = tiny_data["packed"] / "tokenizer.json"
    tok = load_tokenizer(str(tok_path))
    torch.manual_seed(1)
    meta = {
        "model": cfg.model.model_dump(mode="json"),
        "vocab_size": tok.get_vocab_size(),
        "max_seq_len": 128,
        "image_size": cfg.synth.image_size,
    }
    root = tmp_path_factory.mktemp("genckpt")
    save_model(build_model(meta).eval(), root / "ckpt", {"tokenizer": str(tok_path)})
    export_checkpoint(root / "ckpt", root / "hf", tok_path)
    return SimpleNamespace(ckpt=root / "ckpt", hf=root / "hf", tokenizer=tok_path)
