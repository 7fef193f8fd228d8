"""Scaling laws: L(N, D) fits, FLOP counting with attention and output layer, and the
compute-optimal model size for a budget with a bootstrap interval.

Names resolve lazily (PEP 562): training imports `vloom.scaling.flops` for its FLOP count
without importing the fitting code (scipy).
"""

import importlib
from typing import Any

_EXPORTS = {
    "Law": "vloom.scaling.fit",
    "fit_law": "vloom.scaling.fit",
    "scaling_fit": "vloom.scaling.report",
    "scaling_report": "vloom.scaling.report",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
