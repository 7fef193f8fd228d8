"""Generator backends (see vloom.generate.generator): `vloom` (a vloom checkpoint), `hf` (a local
Hugging Face model directory), `http` (an OpenAI-compatible endpoint). Each is a class with
`identity()`, `generate(requests)` and `from_config(GeneratorConfig)`; make_generator imports
the one a config names, so importing this package loads none of them."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

_THREADS_LOCK = threading.Lock()


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


@contextmanager
def torch_threads(n: int, device: object) -> Iterator[None]:
    """torch's intra-op threads set to n while generating on the CPU (0, or another device:
    left as they are), restored after. Decoding a small model token by token is a stream of
    tiny ops: on a shared 2-core machine two threads made the kale step's captioning ~10x
    slower than one (1.0 vs 10.3 pairs/s, demo-shaped model, load 7); torch's count is per
    process, so concurrent generate calls set it under a lock."""
    import torch

    if n <= 0 or getattr(device, "type", str(device)) != "cpu":
        yield
        return
    with _THREADS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(n)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            torch.set_num_threads(before)
