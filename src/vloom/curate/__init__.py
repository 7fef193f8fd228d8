"""Curation: steps that filter and deduplicate documents, and the executor that runs them.

from vloom.curate import run_curate
ledger = run_curate("data/raw", "data/curated", cfg.curate)
"""

from vloom.curate import classify, dedup, filters, mix, refine  # noqa: F401 - registers the built-in steps
from vloom.curate.base import CurateError, Filter, GlobalStep, Step
from vloom.curate.executor import run_curate, run_steps
from vloom.curate.registry import STEPS, build_step, register

__all__ = [
    "STEPS",
    "CurateError",
    "Filter",
    "GlobalStep",
    "Step",
    "build_step",
    "register",
    "run_curate",
    "run_steps",
]
