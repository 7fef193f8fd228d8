"""A tiny checkpoint and one in-process `vloom serve` on 127.0.0.1 for this directory."""

from __future__ import annotations

import pytest
from tinyserve import Served, make_checkpoint

from vloom.evaluate.harness import load_checkpoint
from vloom.serve.protocol import Limits

# small caps, so the hostile-input tests can hit them with small bodies
LIMITS = Limits(max_body_bytes=64 << 10, max_image_bytes=16 << 10, max_images=3, max_n=4)


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
