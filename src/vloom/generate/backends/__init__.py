"""Generator backends (see vloom.generate.generator): `vloom` (a vloom checkpoint), `hf` (a local
Hugging Face model directory), `http` (an OpenAI-compatible endpoint). Each is a class with
`identity()`, `generate(requests)` and `from_config(GeneratorConfig)`; make_generator imports
the one a config names, so importing this package loads none of them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def files_sha256(paths: Iterable[str | Path]) -> str:
    """sha256 over the named files' names and bytes, in the given order (a model's identity
    for the cache: its content, not where it lies)."""
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()
