"""GRPO's pieces: group-normalised advantages, response log-probabilities recomputed with grad
in one batched forward, and the clipped policy-gradient loss with a KL penalty per token."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vloom.evaluate.scoring import Images, batch_images
from vloom.model.vlm import VLM


def group_advantages(
    rewards: torch.Tensor, valid: torch.Tensor, group: int, eps: float = 1e-6
) -> torch.Tensor:
    """(r - mean) / (std + eps) within each consecutive group of `group` samples, over the
    valid ones (a skipped reward: advantage 0, left out of its group's mean and std). A
    group whose rewards are all equal teaches nothing: its advantages are 0."""
    r = rewards.reshape(-1, group).float()
    v = valid.reshape(-1, group).float()
    n = v.sum(1, keepdim=True).clamp(min=1)
    mean = (r * v).sum(1, keepdim=True) / n
    var = (((r - mean) ** 2) * v).sum(1, keepdim=True) / n
    adv = (r - mean) / (var.sqrt() + eps) * v
    return adv.reshape(-1)


def padded(
    prompts: list[list[int]], responses: list[list[int]], pad: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """prompt+response rows right-padded (causal: padding after a row changes nothing before
    it), and for each response token j of row i: the position whose logits predict it
    `pos[i, j]`, its id `tgt[i, j]` and `mask[i, j]` (0 past the response's end)."""
    seqs = [p + r for p, r in zip(prompts, responses, strict=True)]
    T = max(len(s) for s in seqs)
    L = max(max(len(r) for r in responses), 1)
    tokens = torch.full((len(seqs), T), pad, dtype=torch.long)
    pos = torch.zeros((len(seqs), L), dtype=torch.long)
    tgt = torch.full((len(seqs), L), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), L))
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        tokens[i, : len(p) + len(r)] = torch.tensor(p + r)
        n = len(r)
        pos[i, :n] = torch.arange(len(p) - 1, len(p) - 1 + n)
        tgt[i, :n] = torch.tensor(r, dtype=torch.long)
        mask[i, :n] = 1.0
    return tokens, pos, tgt, mask


def token_logprobs(
    model: torch.nn.Module,
    vlm: VLM,
    prompts: list[list[int]],
    responses: list[list[int]],
    images: list[Images],
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(response token | prefix) [N, L] (with grad when enabled) and its mask [N, L];
    one forward over all rows. `model` runs the forward (the DDP wrapper while training),
    `vlm` is the module underneath (its layout and image batching)."""
    tokens, pos, tgt, mask = padded(prompts, responses, vlm.layout.pad)
    pics = batch_images(vlm, list(images))
    pics = pics.to(device) if pics is not None else None
    logits, _ = model(tokens.to(device), pics)  # [N, T, V]
    pos, tgt = pos.to(device), tgt.to(device)
    picked = logits.gather(1, pos[..., None].expand(-1, -1, logits.shape[-1]))  # [N, L, V]
    logp = F.log_softmax(picked.float(), dim=-1).gather(-1, tgt[..., None]).squeeze(-1)
    return logp, mask.to(device)


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL(policy || reference) estimate exp(d) - d - 1, d = ref - logp (GRPO's
    k3: unbiased for samples of the policy, never negative, 0 where the two agree)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    pg_weight: torch.Tensor,
    kl_weight: torch.Tensor,
    clip: float,
    n_tokens: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over response tokens of the clipped surrogate -min(rho A, clip(rho) A) (rows with
    pg_weight 1) plus kl_weight * KL, divided by `n_tokens` (all ranks' response tokens, so
    the gradient does not depend on how rows are split). Rows: adv, pg_weight, kl_weight
    [N]; tokens: logp, old_logp, ref_logp, mask [N, L]. Returns (loss, per-token KL)."""
    ratio = torch.exp(logp - old_logp)
    a = adv[:, None]
    surrogate = -torch.minimum(ratio * a, ratio.clamp(1 - clip, 1 + clip) * a)
    kl = kl_k3(logp, ref_logp)
    per_token = surrogate * pg_weight[:, None] + kl * kl_weight[:, None]
    return (per_token * mask).sum() / max(n_tokens, 1.0), kl.detach()
