"""Sweeps: a study file expanded into runs (equal compute, shared data, one fine-tuning stage),
executed locally, as Ray tasks or as a SLURM array, then summarised in the study report."""

from vloom.sweep.run import run_sweep
from vloom.sweep.spec import Study, StudySpec, load_study

__all__ = ["Study", "StudySpec", "load_study", "run_sweep"]
