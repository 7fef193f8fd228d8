"""Scoring primitives: per-token log-likelihoods of continuations, batched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from vloom.evaluate.records import EXAMPLES, mc_records, pick
from vloom.imagebatch import ImageBatch, join_images
from vloom.model.vlm import VLM

Images = torch.Tensor | ImageBatch | None  # one example's images, in prompt order


def batch_images(model: VLM, parts: list[Images]) -> torch.Tensor | ImageBatch | None:
    """The images of several examples, in order, as one model input. Same-size stacks
    concatenate to one tensor (fixed resolution, and dynamic batches that happen to agree);
    otherwise (dynamic resolution: each image its own aspect-kept size, or an example that
    is already an ImageBatch) all become one ImageBatch, which the encoder runs without
    padding, one attention block per image."""
    vc = model.vision.cfg
    parts = [p for p in parts if p is not None and len(p)]
    if any(isinstance(p, ImageBatch) for p in parts):
        parts = [
            p
            if isinstance(p, ImageBatch)
            else ImageBatch.from_pixels(list(p), vc.patch_size, vc.merge)
            for p in parts
        ]
    return join_images(parts, vc.patch_size, vc.merge)


@torch.no_grad()
def continuation_logprobs(
    model: VLM,
    prompts: list[list[int]],
    continuations: list[list[int]],
    images: list[Images],
    device: torch.device,
) -> list[float]:
    """Sum of log p(continuation | prompt) for each pair; images[i] is [n_i, H, W, 3], an
    ImageBatch (images of different sizes) or None."""
    limit = model.lm.max_seq_len
    prompts = list(prompts)
    for i, (p, c, im) in enumerate(zip(prompts, continuations, images, strict=True)):
        if len(p) + len(c) > limit:
            if im is not None:
                raise ValueError(
                    f"an image example of {len(p) + len(c)} tokens exceeds the model's {limit}"
                )
            prompts[i] = p[len(p) + len(c) - limit :]  # text: keep the end of the context
    seqs = [p + c for p, c in zip(prompts, continuations, strict=True)]
    T = max(len(s) for s in seqs)
    tokens = torch.full((len(seqs), T), model.layout.pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        tokens[i, : len(s)] = torch.tensor(s)
    image_batch = batch_images(model, list(images))
    image_batch = image_batch.to(device) if image_batch is not None else None
    logits, _ = model(tokens.to(device), image_batch)
    logp = F.log_softmax(logits.float(), dim=-1)  # [B, T, V]
    out = []
    for i, (p, c) in enumerate(zip(prompts, continuations, strict=True)):
        pos = torch.arange(len(p) - 1, len(p) + len(c) - 1)
        out.append(float(logp[i, pos, torch.tensor(c)].sum()))
    return out


@torch.no_grad()
def sequence_loss(
    model: VLM, seq: list[int], mask_from: int, images: Images, device: torch.device
) -> tuple[float, int]:
    """Summed NLL of tokens seq[mask_from:] given what precedes, and their count."""
    tokens = torch.tensor(seq, dtype=torch.long)[None]
    logits, _ = model(tokens[:, :-1].to(device), images.to(device) if images is not None else None)
    logp = F.log_softmax(logits[0].float(), dim=-1)  # [T-1, V]
    tgt = tokens[0, 1:].to(device)
    nll = -logp[torch.arange(len(tgt)), tgt]
    keep = nll[max(mask_from - 1, 0) :]
    return float(keep.sum()), int(keep.numel())


def option_scores(
    model: VLM,
    prompts: list[list[int]],
    options: list[list[list[int]]],
    images: list[Images],
    device: torch.device,
    batch_size: int = 32,
) -> list[list[float]]:
    """Summed log-prob of each option of each question (options[q][j] -> scores[q][j])."""
    flat_p, flat_c, flat_i = [], [], []
    for p, opts, im in zip(prompts, options, images, strict=True):
        for o in opts:
            flat_p.append(p)
            flat_c.append(o)
            flat_i.append(im)
    flat: list[float] = []
    for s in range(0, len(flat_p), batch_size):
        sl = slice(s, s + batch_size)
        flat += continuation_logprobs(model, flat_p[sl], flat_c[sl], flat_i[sl], device)
    out, k = [], 0
    for opts in options:
        out.append(flat[k : k + len(opts)])
        k += len(opts)
    return out


def multiple_choice(
    model: VLM,
    prompts: list[list[int]],
    options: list[list[list[int]]],
    images: list[Images],
    device: torch.device,
    batch_size: int = 32,
) -> list[int]:
    """Index of the most likely option (summed log-prob) for each question."""
    return [pick(s) for s in option_scores(model, prompts, options, images, device, batch_size)]


def mc_result(
    rows: list[dict[str, Any]],
    scores: list[list[float]],
    records: bool = False,
    image_path: Path | None = None,
    column: str = "image",
    row_index: list[int] | None = None,
) -> dict[str, Any]:
    """A multiple-choice task's result: accuracy overall and per `qtype`; with `records`
    (tasks pass `ctx.records`), also its per-example records under EXAMPLES, which the
    harness writes to RUN/examples/<task>.jsonl."""
    out: dict[str, Any] = accuracy_by_type(
        [pick(s) for s in scores], [int(r["answer"]) for r in rows], [r["qtype"] for r in rows]
    )
    if records:
        out[EXAMPLES] = mc_records(rows, scores, image_path, column, row_index)
    return out


def accuracy_by_type(picks: list[int], answers: list[int], qtypes: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    correct = [int(p == a) for p, a in zip(picks, answers, strict=True)]
    out["accuracy"] = sum(correct) / max(len(correct), 1)
    for qt in sorted(set(qtypes)):
        idx = [i for i, t in enumerate(qtypes) if t == qt]
        out[f"accuracy_{qt}"] = sum(correct[i] for i in idx) / len(idx)
    out["n"] = len(correct)
    return out
