"""Evaluation fixtures: a randomly initialised tiny model (mechanics, long enough context for
multi-image prompts) saved as a checkpoint that names the tiny run's tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tinyexp import tiny_config

from vloom.evaluate.tasks import EvalContext
from vloom.model.io import build_model, save_model
from vloom.sequence import load_tokenizer


@pytest.fixture(scope="session")
def rand_ckpt(tiny_data, tmp_path_factory) -> Path:
    cfg = tiny_config()
    tok_path = tiny_data["packed"] / "tokenizer.json"
    tok = load_tokenizer(str(tok_path))
    torch.set_num_threads(1)  # a loaded shared CPU: one thread per process runs steadier
    torch.manual_seed(0)
    meta = {
        "model": cfg.model.model_dump(mode="json"),
        "vocab_size": tok.get_vocab_size(),
        "max_seq_len": 384,  # the longest multi_image document of the tiny world, with room
        "image_size": cfg.synth.image_size,
    }
    out = tmp_path_factory.mktemp("randckpt")
    save_model(build_model(meta).eval(), out, {"tokenizer": str(tok_path)})
    return out


@pytest.fixture(scope="session")
def rand_ctx(tiny_data, rand_ckpt) -> EvalContext:
    from vloom.evaluate.harness import load_checkpoint

    model, tok = load_checkpoint(rand_ckpt)
    return EvalContext(model, tok, tiny_data["eval"], torch.device("cpu"), batch_size=16)
