"""Scaling laws: L(N, D) fits, FLOP counting with attention and output layer, and the
compute-optimal model size for a budget with a bootstrap interval."""

from vloom.scaling.fit import Law, fit_law
from vloom.scaling.report import scaling_fit, scaling_report

__all__ = ["Law", "fit_law", "scaling_fit", "scaling_report"]
