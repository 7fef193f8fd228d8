"""The task registry: a task is a dataset plus a scoring method; adding one is adding one file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from vloom.model.vlm import VLM


@dataclass
class EvalContext:
    model: VLM
    tokenizer: Tokenizer
    data_dir: Path  # the synthetic world's eval/ directory (or a user's)
    device: torch.device
    batch_size: int = 32
    max_examples: int | None = None


TaskFn = Callable[[EvalContext], dict[str, Any]]
TASKS: dict[str, TaskFn] = {}


def register(name: str) -> Callable[[TaskFn], TaskFn]:
    def deco(fn: TaskFn) -> TaskFn:
        TASKS[name] = fn
        return fn

    return deco


def get_task(name: str) -> TaskFn:
    if name not in TASKS:
        raise ValueError(f"unknown eval task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


from vloom.evaluate.tasks import caption_loss, text_ppl, text_qa, vqa  # noqa: E402,F401  (registration)
