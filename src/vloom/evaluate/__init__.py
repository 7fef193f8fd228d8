"""Evaluation: tasks (text and vision-language), scoring, results.json.

Names resolve lazily (PEP 562): importing the package for its CLI commands does not import
torch.
"""

import importlib
from typing import Any

_EXPORTS = {
    "RESULTS": "vloom.evaluate.harness",
    "evaluate": "vloom.evaluate.harness",
    "write_results": "vloom.evaluate.harness",
    "TASKS": "vloom.evaluate.tasks",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
