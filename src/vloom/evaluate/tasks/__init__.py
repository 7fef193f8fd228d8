"""The task registry: a task is a dataset plus a scoring method; adding one is adding one file.

A task is a function `fn(ctx, **params) -> {metric: value}` registered with its modality
("vision-language" or "text": which average of a study it counts towards) and its scoring
method ("multiple_choice", "generation" or "perplexity"). Parameters come from a task spec,
`name:key=value,key=value` (values parsed as YAML), e.g. `text_qa:num_fewshot=3` or
`vmcbench:path=data/vmcbench.parquet`. Results are keyed by the task name, or by `as=NAME`
(needed to run one task twice, e.g. `text_qa` and `text_qa:num_fewshot=3,as=text_qa_3shot`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from tokenizers import Tokenizer

from vloom.model.vlm import VLM

MODALITIES = ("vision-language", "text")
SCORINGS = ("multiple_choice", "generation", "perplexity")


@dataclass
class EvalContext:
    model: VLM
    tokenizer: Tokenizer
    data_dir: Path  # the synthetic world's eval/ directory (or a user's)
    device: torch.device
    batch_size: int = 32
    max_examples: int | None = None
    seed: int = 0  # few-shot example choice and converted-option order
    records: bool = False  # also return per-example records (vloom.evaluate.records.EXAMPLES)


TaskFn = Callable[..., dict[str, Any]]
TASKS: dict[str, TaskFn] = {}


def register(
    name: str, modality: str = "text", scoring: str = "multiple_choice"
) -> Callable[[TaskFn], TaskFn]:
    if modality not in MODALITIES:
        raise ValueError(f"task {name!r}: modality must be one of {MODALITIES}, not {modality!r}")
    if scoring not in SCORINGS:
        raise ValueError(f"task {name!r}: scoring must be one of {SCORINGS}, not {scoring!r}")

    def deco(fn: TaskFn) -> TaskFn:
        fn.modality = modality  # type: ignore[attr-defined]  # read by the study report
        fn.scoring = scoring  # type: ignore[attr-defined]
        fn.task_name = name  # type: ignore[attr-defined]
        TASKS[name] = fn
        return fn

    return deco


def get_task(name: str) -> TaskFn:
    if name not in TASKS:
        raise ValueError(f"unknown eval task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def split_task_list(text: str) -> list[str]:
    """Comma-separated task specs, where a spec's own `key=value` parameters also use commas:
    `vqa,text_qa:num_fewshot=3,as=tqa3,world_qa` -> [vqa, text_qa:num_fewshot=3,as=tqa3,
    world_qa] (a piece with `=` and no `:` before it continues the previous spec)."""
    out: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        eq, colon = piece.find("="), piece.find(":")
        if out and eq >= 0 and (colon < 0 or colon > eq):
            out[-1] += "," + piece
        else:
            out.append(piece)
    return out


def parse_task_spec(spec: str) -> tuple[str, dict[str, Any], str]:
    """`name:key=value,...` -> (task name, params, results key); unknown names/params fail here."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    fn = get_task(name)
    params: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        if "=" not in part:
            raise ValueError(f"eval task spec {spec!r}: expected key=value, got {part!r}")
        k, v = part.split("=", 1)
        params[k.strip()] = yaml.safe_load(v)
    key = str(params.pop("as", name))
    accepted = [p for p in inspect.signature(fn).parameters if p != "ctx"]
    bad = [k for k in params if k not in accepted]
    if bad:
        raise ValueError(
            f"eval task {name!r} has no parameter {bad[0]!r}; it takes: "
            f"{', '.join(accepted) or 'none'}"
        )
    return name, params, key


from vloom.evaluate.tasks import (  # noqa: E402,F401  (registration)
    caption_gen,
    caption_loss,
    mcbench,
    multi_image,
    self_correct,
    text_ppl,
    text_qa,
    vmcbench,
    vqa,
    vqa_mc_converted,
    vqa_open,
    world_qa,
)
