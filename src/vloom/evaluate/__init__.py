"""Evaluation: tasks (text and vision-language), scoring, results.json.

Names resolve lazily (PEP 562): importing the package for its CLI commands does not import
torch.
"""

from vloom.lazy import lazy_exports

_EXPORTS = {
    "RESULTS": "vloom.evaluate.harness",
    "evaluate": "vloom.evaluate.harness",
    "write_results": "vloom.evaluate.harness",
    "TASKS": "vloom.evaluate.tasks",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
