"""Decoder LM, vision encoder, connector and the VLM that joins them.

Names resolve lazily (PEP 562) so that `vloom --help` and commands that never touch a model
do not pay for importing torch.
"""

from vloom.lazy import lazy_exports

_EXPORTS = {
    "PARTS": "vloom.model.vlm",
    "VLM": "vloom.model.vlm",
    "make_targets": "vloom.model.vlm",
    "load_model": "vloom.model.io",
    "save_model": "vloom.model.io",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
