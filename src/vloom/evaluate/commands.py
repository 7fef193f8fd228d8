"""Commands this package adds to `vloom` (see COMMAND_MODULES in cli.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def add_commands(add: Callable[..., Any]) -> None:
    """Register subcommands with `add(name, fn, help, config=True)`; fn receives argparse args."""
