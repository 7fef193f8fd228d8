"""One RL optimizer step inside the training loop: roll out, reward, advantage, backward.

Each rank asks its share of the step's questions (`rl.prompts_per_step` split over ranks),
samples `group_size` answers to each with `vloom.generate.sample` (KV cache, batched; a
second attempt after `second_attempt_prompt` when the recipe answers twice), scores them
with the reward, normalises rewards within each group, and recomputes the responses'
log-probabilities with grad in one batched forward, against a frozen reference model's.
The loop (vloom.train.loop) owns the optimizer, schedule, checkpoints and metrics lines.
"""

from __future__ import annotations

import contextlib
import copy
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from vloom.config import ExperimentConfig
from vloom.evaluate.tasks.self_correct import second_attempt_prompt
from vloom.evaluate.tasks.vqa_open import STOP
from vloom.generate import Sample, sample
from vloom.model.vlm import VLM
from vloom.rl.grpo import group_advantages, policy_loss, token_logprobs
from vloom.rl.prompts import make_rows, prompt_head, step_indices
from vloom.rl.recipes import Recipe, recipe_for
from vloom.rl.rewards import exact, load_reward, reward_name, score
from vloom.sequence import encode_text
from vloom.train import distributed as D
from vloom.train.checkpoint import load_weights

# the figures a step's metrics line carries, summed over ranks as (sum, count) pairs
_SUMS = ("reward", "kl", "kl_t1", "kl_t2", "response_len", "response_len_t2", "acc_t1", "acc_t2")


def load_reference(vlm: VLM, path: str | Path, device: torch.device) -> VLM:
    """A frozen copy of the policy holding `path`'s weights; a checkpoint of another shape is
    a one-line error naming it (load_weights names the tensor and both shapes)."""
    ref = frozen_copy(vlm, device)
    try:
        load_weights(ref, path)
    except (ValueError, FileNotFoundError) as e:
        raise ValueError(f"rl.reference: {e}") from None
    return ref


def frozen_copy(vlm: VLM, device: torch.device) -> VLM:
    ref = copy.deepcopy(vlm).to(device).eval()
    ref.requires_grad_(False)
    return ref


def response_tokens(s: Sample, eos: int, tokenizer: Tokenizer) -> list[int]:
    """The ids the policy chose: the sampled ones, and the eos that ended it, if one did (a
    stop string's tokens are among the sampled ones)."""
    text = tokenizer.decode(s.tokens)
    by_eos = s.finished and not any(st in text for st in STOP)
    return s.tokens + [eos] if by_eos else list(s.tokens)


class RLStep:
    """The rl stages' state: prompt rows, the reward, the current stage's recipe and
    frozen reference."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        vlm: VLM,
        tokenizer: Tokenizer,
        device: torch.device,
        info: D.DistInfo,
        packed_dir: Path,
    ) -> None:
        assert cfg.rl is not None
        self.cfg, self.rl, self.vlm, self.tok, self.device, self.info = (
            cfg,
            cfg.rl,
            vlm,
            tokenizer,
            device,
            info,
        )
        rl = cfg.rl
        if rl.prompts_per_step % info.world:
            raise ValueError(
                f"rl.prompts_per_step {rl.prompts_per_step} must be a multiple of the "
                f"{info.world} ranks"
            )
        if cfg.train.parallel == "fsdp" and info.active:
            raise ValueError("rl stages run under DDP (train.parallel: ddp), not FSDP")
        self.seed = cfg.seed if rl.seed is None else rl.seed
        synth_dir = packed_dir.parent / "synth"  # the run layout: ROOT/synth beside ROOT/packed
        self.rows = make_rows(synth_dir, list(rl.qtypes), rl.prompts, self.seed)
        self.reward = load_reward(rl.reward)
        self.reward_name = reward_name(rl.reward)
        self.recipe: Recipe | None = None
        self.ref: VLM | None = None

    def begin(self, stage: int, start_ckpt: Path | str | None) -> None:
        """Enter rl stage `stage`: its recipe, and its reference: `rl.reference`, else the
        stage's starting weights (the model as it is now when the stage starts fresh;
        `start_ckpt` when a run resumes inside the stage)."""
        self.recipe = recipe_for(self.rl, self.cfg.train.stages, stage)
        self.ref = None  # free the previous stage's before building this one
        if self.rl.reference:
            self.ref = load_reference(self.vlm, self.rl.reference, self.device)
        elif start_ckpt is not None:
            self.ref = load_reference(self.vlm, start_ckpt, self.device)
        else:
            self.ref = frozen_copy(self.vlm, self.device)

    def _rollout(
        self, heads: list[list[int]], texts: list[str], pixels: list[torch.Tensor], seed: int
    ) -> tuple[list[list[int]], list[Sample]]:
        rl = self.rl
        prompts = [h + encode_text(self.tok, t) for h, t in zip(heads, texts, strict=True)]
        was = self.vlm.training
        self.vlm.eval()
        try:
            got = sample(
                self.vlm,
                self.tok,
                prompts,
                list(pixels),
                self.device,
                max_new_tokens=rl.max_new_tokens,
                temperature=rl.temperature,
                seed=seed,
                stop=STOP,
                batch_size=rl.batch_size,
                use_cache=rl.use_cache,
            )
        finally:
            self.vlm.train(was)
        return prompts, got

    def run(
        self,
        step: int,
        model: torch.nn.Module,
        autocast: Callable[[], contextlib.AbstractContextManager],
        apply_update: Callable[[], None],
    ) -> tuple[float, dict[str, Any]]:
        """Rollouts and backward for `step` (the last update's gradients are left for the
        loop's optimizer step; earlier ones, with rl.updates > 1, call `apply_update`).
        Returns (loss, the metrics line's rl figures, all ranks together)."""
        assert self.recipe is not None and self.ref is not None
        rl, rec, info = self.rl, self.recipe, self.info
        G = rl.group_size
        idx = step_indices(len(self.rows), rl.prompts_per_step, step, self.seed)
        rows = [self.rows[i] for i in idx[info.rank :: info.world]]
        heads, pixels = [], []
        for r in rows:
            h, px = prompt_head(self.vlm, self.tok, r)
            heads += [h] * G
            pixels += [px] * G
        reps = [r for r in rows for _ in range(G)]
        base = (self.seed * 1_000_003 + step) * 64 + info.rank * 2

        with autocast():
            p1, y1 = self._rollout(heads, [r["text"] for r in reps], pixels, base)
        t1 = [s.text for s in y1]
        r1, skips = score(self.reward, self.reward_name, reps, t1)
        ok1 = [exact(r, t) for r, t in zip(reps, t1, strict=True)]
        attempts = [(p1, y1)]
        r2: list[float | None] = [None] * len(reps)
        ok2: list[float] = []
        if rec.attempts == 2:
            texts2 = [second_attempt_prompt(r["text"], t) for r, t in zip(reps, t1, strict=True)]
            with autocast():
                p2, y2 = self._rollout(heads, texts2, pixels, base + 1)
            t2 = [s.text for s in y2]
            r2, skips2 = score(self.reward, self.reward_name, reps, t2)
            skips.update(skips2)
            ok2 = [exact(r, t) for r, t in zip(reps, t2, strict=True)]
            attempts.append((p2, y2))

        ret = [rec.returns(a, b) for a, b in zip(r1, r2, strict=True)]
        valid = torch.tensor([x is not None for x in ret])
        R = torch.tensor([x if x is not None else 0.0 for x in ret])
        credits = list(zip(*(rec.credits(a, b) for a, b in zip(r1, r2, strict=True)), strict=True))
        advs = [
            group_advantages(
                torch.tensor([x if x is not None else 0.0 for x in c]),
                torch.tensor([x is not None for x in c]),
                G,
            )
            for c in credits
        ]  # one per attempt

        # every attempt's rows in one batch: attempt k's rows carry its pg and KL weights
        prompts, responses, images, adv_rows, pg_w, kl_w, which = [], [], [], [], [], [], []
        for k, (pk, yk) in enumerate(attempts):
            prompts += pk
            responses += [response_tokens(s, self.vlm.layout.eos, self.tok) for s in yk]
            images += pixels
            adv_rows.append(advs[k])
            pg_w += [float(rec.pg[k])] * len(yk)
            kl_w += [rec.kl[k]] * len(yk)
            which += [k] * len(yk)
        dev = self.device
        adv_t = torch.cat(adv_rows).to(dev)
        pg_t, kl_t = torch.tensor(pg_w, device=dev), torch.tensor(kl_w, device=dev)
        with torch.no_grad(), autocast():
            ref_logp, mask = token_logprobs(self.ref, self.ref, prompts, responses, images, dev)
            old = None
            if rl.updates > 1:
                old, _ = token_logprobs(model, self.vlm, prompts, responses, images, dev)
        n_tok = float(D.all_reduce_sum(mask.sum().reshape(1).cpu(), info).item())

        for u in range(rl.updates):
            with autocast():
                logp, _ = token_logprobs(model, self.vlm, prompts, responses, images, dev)
            loss, kl = policy_loss(
                logp.float(),
                logp.detach().float() if old is None else old.float(),
                ref_logp.float(),
                adv_t,
                mask,
                pg_t,
                kl_t,
                rl.clip,
                n_tok,
            )
            (loss * info.world).backward()  # DDP averages over ranks; the loss is a global sum
            if u < rl.updates - 1:
                apply_update()

        kl_row = (kl * mask).sum(1).cpu()
        n_row = mask.sum(1).cpu()
        which_t = torch.tensor(which)
        sums = {
            "reward": (float(R[valid].sum()), float(valid.sum())),
            "kl": (float(kl_row.sum()), float(n_row.sum())),
            "kl_t1": (float(kl_row[which_t == 0].sum()), float(n_row[which_t == 0].sum())),
            "response_len": (float(n_row[which_t == 0].sum()), float((which_t == 0).sum())),
            "acc_t1": (float(sum(ok1)), float(len(ok1))),
        }
        if rec.attempts == 2:
            sums["kl_t2"] = (float(kl_row[which_t == 1].sum()), float(n_row[which_t == 1].sum()))
            sums["response_len_t2"] = (
                float(n_row[which_t == 1].sum()),
                float((which_t == 1).sum()),
            )
            sums["acc_t2"] = (float(sum(ok2)), float(len(ok2)))
        local = torch.tensor([float(loss.detach()), float(sum(map(len, prompts + responses)))])
        loss_val, tokens = D.all_reduce_sum(local, info).tolist()
        out = self._gather(sums, skips)
        out["rollout_tokens"] = int(tokens)
        return loss_val, out

    def _gather(self, sums: dict[str, tuple[float, float]], skips: Counter) -> dict[str, Any]:
        """Means over all ranks of each figure, and the reward skips counted by name."""
        flat = torch.tensor(
            [v for k in _SUMS for v in sums.get(k, (0.0, 0.0))], dtype=torch.float64
        )
        flat = D.all_reduce_sum(flat, self.info)
        out: dict[str, Any] = {"rl_recipe": self.recipe.name if self.recipe else None}
        for i, k in enumerate(_SUMS):
            s, n = float(flat[2 * i]), float(flat[2 * i + 1])
            if k in sums:
                out[k] = round(s / n, 5) if n else None
        if self.info.active:
            parts: list[Any] = [None] * self.info.world
            torch.distributed.all_gather_object(parts, dict(skips))
            skips = sum((Counter(p) for p in parts), Counter())
        out["reward_skips"] = dict(sorted(skips.items()))
        return out
