"""Decoder LM, vision encoder, connector and the VLM that joins them.

Names resolve lazily (PEP 562) so that `vloom --help` and commands that never touch a model
do not pay for importing torch.
"""

import importlib
from typing import Any

_EXPORTS = {
    "PARTS": "vloom.model.vlm",
    "VLM": "vloom.model.vlm",
    "make_targets": "vloom.model.vlm",
    "load_model": "vloom.model.io",
    "save_model": "vloom.model.io",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
