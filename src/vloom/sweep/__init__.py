"""Sweeps: a study file expanded into runs (equal compute, shared data, one fine-tuning stage),
executed locally, as Ray tasks or as a SLURM array, then summarised in the study report.

Names resolve lazily (PEP 562): `vloom --help` imports `vloom.sweep.commands` without the
sweep's runner and its report (matplotlib).
"""

from vloom.lazy import lazy_exports

_EXPORTS = {
    "Study": "vloom.sweep.spec",
    "StudySpec": "vloom.sweep.spec",
    "load_study": "vloom.sweep.spec",
    "run_sweep": "vloom.sweep.run",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
