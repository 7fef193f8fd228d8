"""Evaluation: tasks (text and vision-language), scoring, results.json."""

from vloom.evaluate.harness import RESULTS, evaluate, write_results
from vloom.evaluate.tasks import TASKS

__all__ = ["RESULTS", "TASKS", "evaluate", "write_results"]
