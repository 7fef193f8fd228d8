"""Greedy decoding: prompts (with their images) -> generated text, batched by prompt length."""

from __future__ import annotations

from collections import defaultdict

import torch
from tokenizers import Tokenizer

from vloom.evaluate.scoring import Images, batch_images
from vloom.model.vlm import VLM


def cut_at_stop(text: str, stop: list[str] | tuple[str, ...]) -> str:
    """The text up to (not including) the earliest stop string."""
    ends = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return text[: min(ends)] if ends else text


@torch.no_grad()
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
    """Greedy continuations of each prompt, stopped at <eos>, a stop string or max_new_tokens.

    Prompts of equal length run together (no padding, so positions match the single-example
    run exactly); the prompt runs once, then each new token reuses the cached keys/values.
    A text prompt longer than the model's context keeps its end; an image prompt fails.
    """
    limit = model.lm.max_seq_len
    if not 0 < max_new_tokens < limit:
        raise ValueError(
            f"max_new_tokens must be in 1..{limit - 1} for this model, not {max_new_tokens}"
        )
    prompts = list(prompts)
    for i, (p, im) in enumerate(zip(prompts, images, strict=True)):
        room = limit - max_new_tokens
        if len(p) > room:
            if im is not None or model.layout.image in p:
                raise ValueError(
                    f"an image prompt of {len(p)} tokens + {max_new_tokens} new exceeds the "
                    f"model's {limit}"
                )
            prompts[i] = p[len(p) - max(room, 1) :]
    groups: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        groups[len(p)].append(i)
    out: list[str] = [""] * len(prompts)
    for _, idx in sorted(groups.items()):
        for s in range(0, len(idx), batch_size):
            chunk = idx[s : s + batch_size]
            for i, ids in zip(
                chunk,
                _greedy_batch(
                    model, prompts, images, chunk, device, max_new_tokens, tokenizer, stop
                ),
                strict=True,
            ):
                out[i] = cut_at_stop(tokenizer.decode(ids), stop).strip()
    return out


def _greedy_batch(
    model: VLM,
    prompts: list[list[int]],
    images: list[Images],
    chunk: list[int],
    device: torch.device,
    max_new_tokens: int,
    tokenizer: Tokenizer,
    stop: list[str] | tuple[str, ...],
) -> list[list[int]]:
    tokens = torch.tensor([prompts[i] for i in chunk], dtype=torch.long, device=device)
    # As in scoring: same-size images stack, different sizes become one ImageBatch.
    image_batch = batch_images(model, [images[i] for i in chunk])
    image_batch = image_batch.to(device) if image_batch is not None else None
    new: list[list[int]] = [[] for _ in chunk]
    done = [False] * len(chunk)
    cache = model.lm.new_cache()
    for _ in range(max_new_tokens):
        logits, _ = model(tokens, image_batch, cache=cache)
        image_batch = None  # the images sit in the prompt, which is now cached
        # Never emit the placeholders: an <image> token without an image breaks the next step.
        logits[:, -1, model.layout.image] = float("-inf")
        logits[:, -1, model.layout.pad] = float("-inf")
        nxt = logits[:, -1].argmax(-1)
        for j, t in enumerate(nxt.tolist()):
            if done[j]:
                continue
            if t == model.layout.eos:
                done[j] = True
                continue
            new[j].append(t)
            if stop and cut_at_stop(tokenizer.decode(new[j]), stop) != tokenizer.decode(new[j]):
                done[j] = True
        if all(done):
            break
        tokens = nxt[:, None]
    return new
