"""Greedy decoding for evaluation: a thin wrapper on vloom.generate's one sampling loop."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer

from vloom.evaluate.scoring import Images
from vloom.generate import cut_at_stop, sample
from vloom.model.vlm import VLM

__all__ = ["cut_at_stop", "greedy_generate"]


def greedy_generate(
    model: VLM,
    tokenizer: Tokenizer,
    prompts: list[list[int]],
    images: list[Images],
    device: torch.device,
    max_new_tokens: int = 16,
    stop: list[str] | tuple[str, ...] = (),
    batch_size: int = 32,
) -> list[str]:
    """Greedy continuations of each prompt, stopped at <eos>, a stop string or max_new_tokens,
    as text cut before the earliest stop string. See `vloom.generate.sample` for batching,
    the KV cache and the prompt-length rules."""
    got = sample(
        model,
        tokenizer,
        prompts,
        images,
        device,
        max_new_tokens=max_new_tokens,
        stop=stop,
        batch_size=batch_size,
    )
    return [s.text for s in got]
