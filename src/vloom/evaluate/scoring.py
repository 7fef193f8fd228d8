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
    """Summed log-prob of each option of each question (options[q][j] -> scores[q][j]).

    Each prompt (its images included) runs once into a KV cache that all its options then
    continue: a question's options share the whole prompt, so this costs about one prompt
    plus the options instead of one prompt per option (3-4x less on text_qa's scene
    descriptions). Prompts of one length form a batch; one that must be cut to fit the model
    keeps the one-sequence-per-option path (its cut depends on the option's length)."""
    out: list[list[float]] = [[] for _ in options]
    limit = model.lm.max_seq_len
    shared: dict[int, list[int]] = {}  # prompt length -> questions
    plain: list[int] = []
    for q, (p, opts) in enumerate(zip(prompts, options, strict=True)):
        if not opts:
            continue
        fits = p and len(p) + max(len(o) for o in opts) <= limit and all(opts)
        (shared.setdefault(len(p), []) if fits else plain).append(q)
    per = max(1, batch_size // 4)  # questions a batch: about batch_size sequences of options
    for _, qs in sorted(shared.items()):
        for s in range(0, len(qs), per):
            chunk = qs[s : s + per]
            scores = _shared_prompt_scores(
                model,
                [prompts[q] for q in chunk],
                [options[q] for q in chunk],
                [images[q] for q in chunk],
                device,
            )
            for q, sc in zip(chunk, scores, strict=True):
                out[q] = sc
    flat_q, flat_p, flat_c, flat_i = [], [], [], []
    for q in plain:
        for o in options[q]:
            flat_q.append(q)
            flat_p.append(prompts[q])
            flat_c.append(o)
            flat_i.append(images[q])
    for s in range(0, len(flat_p), batch_size):
        sl = slice(s, s + batch_size)
        lp = continuation_logprobs(model, flat_p[sl], flat_c[sl], flat_i[sl], device)
        for q, v in zip(flat_q[sl], lp, strict=True):
            out[q].append(v)
    return out


@torch.no_grad()
def _shared_prompt_scores(
    model: VLM,
    prompts: list[list[int]],
    options: list[list[list[int]]],
    images: list[Images],
    device: torch.device,
) -> list[list[float]]:
    """option_scores for prompts of one length: the prompts once into a cache, then every
    option of every prompt as one batch continuing its prompt's cache rows."""
    cache = model.lm.new_cache()
    tokens = torch.tensor(prompts, dtype=torch.long, device=device)
    image_batch = batch_images(model, list(images))
    image_batch = image_batch.to(device) if image_batch is not None else None
    last = model(tokens, image_batch, cache=cache)[0][:, -1].float().log_softmax(-1)  # [B, V]
    rows = torch.tensor([q for q, opts in enumerate(options) for _ in opts], device=device)
    flat = [o for opts in options for o in opts]
    for i in range(len(cache.k)):  # each option continues its own prompt's keys and values
        cache.k[i] = cache.k[i].index_select(0, rows)  # type: ignore[union-attr]
        cache.v[i] = cache.v[i].index_select(0, rows)  # type: ignore[union-attr]
    T = max(len(o) for o in flat)
    opt = torch.full((len(flat), T), model.layout.pad, dtype=torch.long)
    for j, o in enumerate(flat):
        opt[j, : len(o)] = torch.tensor(o)
    logp = model(opt.to(device), None, cache=cache)[0].float().log_softmax(-1)  # [N, T, V]
    scores: list[float] = []
    for j, o in enumerate(flat):
        first = last[rows[j], o[0]]  # the first option token, from the prompt's last position
        rest = logp[j, torch.arange(len(o) - 1), torch.tensor(o[1:])].sum() if len(o) > 1 else 0
        scores.append(float(first + rest))
    out, k = [], 0
    for opts in options:
        out.append(scores[k : k + len(opts)])
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
