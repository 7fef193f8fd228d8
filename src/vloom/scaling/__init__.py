"""Scaling laws: L(N, D) fits, FLOP counting with attention and output layer, and the
compute-optimal model size for a budget with a bootstrap interval.

Names resolve lazily (PEP 562): training imports `vloom.scaling.flops` for its FLOP count
without importing the fitting code (scipy).
"""

from vloom.lazy import lazy_exports

_EXPORTS = {
    "Law": "vloom.scaling.fit",
    "fit_law": "vloom.scaling.fit",
    "scaling_fit": "vloom.scaling.report",
    "scaling_report": "vloom.scaling.report",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
