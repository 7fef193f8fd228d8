"""CIDEr and BLEU come from the optional `eval` extra: caption-scoring tests skip without it."""

from __future__ import annotations

import importlib.util

import pytest

MODULES = ("pycocoevalcap", "sacrebleu")
REASON = "caption metrics (CIDEr, BLEU) need the eval extra: pip install 'vloom[eval]'"
HAVE_CAPTION_METRICS = all(importlib.util.find_spec(m) is not None for m in MODULES)


def need_caption_metrics() -> None:
    """Skip the calling test when the eval extra is absent."""
    for mod in MODULES:
        pytest.importorskip(mod, reason=REASON)
