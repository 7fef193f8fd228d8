"""A tiny checkpoint and one in-process `vloom serve` on 127.0.0.1 for this directory."""

from __future__ import annotations

import pytest
from tinyserve import LIMITS, Served, make_checkpoint

from vloom.evaluate.harness import load_checkpoint


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def served(tiny_ckpt):
    s = Served(tiny_ckpt, limits=LIMITS, max_batch=8)
    yield s
    s.close()


@pytest.fixture(scope="module")
def reference(tiny_ckpt):
    """The same checkpoint loaded apart from the server, for vloom.generate.sample."""
    model, tok = load_checkpoint(tiny_ckpt, device="cpu")
    return model, tok
