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
