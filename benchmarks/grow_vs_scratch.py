"""Steps to a target validation loss: a HyperCloned wide model vs the same wide model from scratch.

    python benchmarks/grow_vs_scratch.py [--out /tmp/grow_bench] [--small-steps 400] \
        [--steps 400] [--eval-every 20] [--d-model 64] [--factor 2] [--noise 0.01] [--threads 2]

1. Makes a small synthetic world (vloom.synth) and packs it (vloom.pack), then holds out a
   fixed set of packed rows (text and image rows alike) as the validation set.
2. Trains a small model (width d) for --small-steps, grows it x factor with HyperCloning.
3. Trains the grown model and a randomly initialised model of the same wide shape for --steps
   each, on the same batches in the same order with the same LR schedule (warmup + cosine, as
   vloom.train), evaluating validation loss every --eval-every steps.
   The grown model gets HyperCloning's cancelling noise (--noise): without noise every copy
   of a weight receives the same gradient and AdamW update, so the wide model never becomes
   more than the small one.
4. Prints the validation curves, then for several target losses (the scratch run's loss at
   50%, 75%, 90% and 100% of its steps) the steps each run needed and the ratio.

Both wide runs use vloom.train's optimizer (AdamW, decay on matrices only) and LR schedule; the
loop here is a plain one rather than `vloom.train.train` so that both runs see exactly the same
held-out split and so the grown weights can be passed in directly. The small model's steps are
not counted for the grown run (the paper's comparison counts them separately as well).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from vloom.config import config_from_dict
from vloom.model.grow import grow_model
from vloom.model.vlm import VLM, make_targets
from vloom.pack import STATS_FILE, PackedStream, run_pack
from vloom.synth import MANIFEST, generate
from vloom.train.loop import make_optimizer
from vloom.train.schedule import lr_at


def experiment(args: argparse.Namespace) -> dict:
    return {
        "seed": args.seed,
        "synth": {
            "n_interleaved": 400,
            "n_pairs": 800,
            "n_text": 800,
            "n_eval_vqa": 4,
            "n_eval_text": 4,
            "noise": {
                k: 0.0
                for k in (
                    "exact_duplicate",
                    "near_duplicate",
                    "spam",
                    "foreign_language",
                    "broken_image",
                    "tiny_image",
                    "unrelated_image",
                )
            },
        },
        "pack": {"vocab_size": 512, "seq_len": 128, "tokenizer_docs": 1000, "shard_sequences": 512},
        "model": {
            "d_model": args.d_model,
            "n_layers": args.n_layers,
            "n_heads": 4,
            "n_kv_heads": 2,
            "tie_embeddings": not args.untied,
            "vision": {"d_model": 32, "n_layers": 1, "n_heads": 2, "patch_size": 8, "merge": 2},
        },
        "train": {
            "steps": args.steps,
            "batch_size": args.batch,
            "lr": args.lr,
            "warmup_steps": max(1, args.steps // 20),
            "schedule": "cosine",
        },
    }


class Rows:
    """All packed rows (text and image streams) with a fixed held-out validation split."""

    def __init__(self, packed: Path, n_val: int, seed: int) -> None:
        self.streams = [PackedStream(packed, "text", seed), PackedStream(packed, "image", seed)]
        self.index = [(s, i) for s, st in enumerate(self.streams) for i in range(len(st))]
        order = np.random.default_rng(seed).permutation(len(self.index))
        self.val = [self.index[i] for i in order[:n_val]]
        self.train = [self.index[i] for i in order[n_val:]]
        self.seed = seed

    def batch(self, ids: list[tuple[int, int]]):
        rows = [self.streams[s].row(i) for s, i in ids]
        tokens = torch.from_numpy(np.stack([r[0] for r in rows]).astype(np.int64))
        ims = [r[1] for r in rows if len(r[1])]
        images = torch.from_numpy(np.concatenate(ims)) if ims else None
        inputs, targets = make_targets(tokens)
        return inputs, targets, images

    def train_batches(self, steps: int, batch: int):
        """The same batches, in the same order, for every run (epochs reshuffled by seed)."""
        epoch, pos, order = 0, 0, None
        for _ in range(steps):
            ids = []
            while len(ids) < batch:
                if order is None or pos >= len(order):
                    order = np.random.default_rng([self.seed, 7, epoch]).permutation(
                        len(self.train)
                    )
                    epoch, pos = epoch + 1, 0
                ids.append(self.train[order[pos]])
                pos += 1
            yield self.batch(ids)


@torch.no_grad()
def val_loss(model: VLM, rows: Rows, batch: int) -> float:
    model.eval()
    total, n = 0.0, 0
    for lo in range(0, len(rows.val), batch):
        inputs, targets, images = rows.batch(rows.val[lo : lo + batch])
        logits, _ = model(inputs, images)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            targets.reshape(-1),
            ignore_index=-100,
            reduction="sum",
        )
        total += loss.item()
        n += int((targets != -100).sum())
    model.train()
    return total / n


def run(
    model: VLM, cfg, rows: Rows, steps: int, eval_every: int, label: str
) -> list[tuple[int, float]]:
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    curve = [(0, val_loss(model, rows, 32))]
    t0 = time.perf_counter()
    model.train()
    for step, (inputs, targets, images) in enumerate(
        rows.train_batches(steps, cfg.train.batch_size)
    ):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg.train, steps)
        _, loss = model(inputs, images, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            curve.append((step + 1, val_loss(model, rows, 32)))
    print(
        f"{label}: {steps} steps in {time.perf_counter() - t0:.0f}s, val loss {curve[0][1]:.3f} -> {curve[-1][1]:.3f}",
        flush=True,
    )
    return curve


def steps_to(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((s for s, v in curve if v <= target), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out", default="/tmp/vloom_grow_bench", help="work directory (data is reused)"
    )
    ap.add_argument("--small-steps", type=int, default=400)
    ap.add_argument("--steps", type=int, default=400, help="steps for each wide run")
    ap.add_argument("--eval-every", type=int, default=20)
    ap.add_argument("--d-model", type=int, default=64, help="small model width")
    ap.add_argument("--n-layers", type=int, default=4)
    ap.add_argument("--factor", type=int, default=2)
    ap.add_argument(
        "--noise",
        type=float,
        default=0.01,
        help="std of the cancelling symmetry-breaking noise; without it the copies get identical"
        " updates and the grown model stays the small one (0 to see that)",
    )
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3, help="peak LR of the two wide runs")
    ap.add_argument("--small-lr", type=float, default=3e-3, help="peak LR of the small model")
    ap.add_argument("--n-val", type=int, default=128, help="held-out packed rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--untied", action="store_true", help="untied input/output embeddings (default: tied)"
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    cfg = config_from_dict(experiment(args))
    t0 = time.perf_counter()
    if not (out / "synth" / MANIFEST).exists():
        generate(cfg.synth, out / "synth", cfg.seed, quiet=True)
    if not (out / "packed" / STATS_FILE).exists():
        run_pack(out / "synth" / "train", out / "packed", cfg, quiet=True)
    stats = json.loads((out / "packed" / STATS_FILE).read_text())
    rows = Rows(out / "packed", args.n_val, args.seed)
    print(
        f"data: {len(rows.train)} train rows, {len(rows.val)} val rows ({time.perf_counter() - t0:.0f}s)",
        flush=True,
    )

    def fresh(c) -> VLM:
        torch.manual_seed(args.seed)
        return VLM(c.model, stats["vocab_size"], stats["seq_len"], stats["image_size"])

    small_cfg = cfg.model_copy(deep=True)
    small_cfg.train.steps = args.small_steps
    small_cfg.train.lr = args.small_lr
    small_cfg.train.warmup_steps = max(1, args.small_steps // 20)
    small = fresh(small_cfg)
    run(small, small_cfg, rows, args.small_steps, args.eval_every, f"small d={args.d_model}")
    grown = grow_model(small, args.factor, noise=args.noise, seed=args.seed)
    wide_cfg = cfg.model_copy(deep=True)
    wide_cfg.model = grown.cfg  # identical shapes; norm_eps differs only by the tie scaling
    g0 = val_loss(grown, rows, 32)
    s0 = val_loss(small, rows, 32)
    print(
        f"grown x{args.factor}: val loss {g0:.4f} (small {s0:.4f}), params {small.num_params()} -> {grown.num_params()}"
    )
    grown_curve = run(
        grown, wide_cfg, rows, args.steps, args.eval_every, f"grown d={grown.cfg.d_model}"
    )
    scratch_cfg = cfg.model_copy(deep=True)
    scratch_cfg.model = cfg.model.model_copy(
        update={
            "d_model": grown.cfg.d_model,
            "n_heads": grown.cfg.n_heads,
            "n_kv_heads": grown.cfg.n_kv_heads,
            "ffn_mult": grown.cfg.ffn_mult,
        }
    )
    scratch = fresh(scratch_cfg)
    assert scratch.num_params() == grown.num_params()
    scratch_curve = run(
        scratch, scratch_cfg, rows, args.steps, args.eval_every, f"scratch d={grown.cfg.d_model}"
    )

    print("\nstep  grown   scratch")
    for (s, g), (_, r) in zip(grown_curve, scratch_curve, strict=True):
        print(f"{s:5d}  {g:.4f}  {r:.4f}")
    print("\ntarget (scratch at)  scratch_steps  grown_steps  ratio")
    n = len(scratch_curve) - 1
    for frac in (0.5, 0.75, 0.9, 1.0):
        s_step, target = scratch_curve[max(1, math.ceil(frac * n))]
        # the first step at which scratch reaches the target (its curve need not be monotone)
        s_step = steps_to(scratch_curve, target)
        g_step = steps_to(grown_curve, target)
        ratio = (
            f"{s_step / g_step:.1f}x"
            if g_step
            else ("grown starts below" if g_step == 0 else "n/a")
        )
        print(
            f"{target:.4f} ({int(frac * 100):3d}%)      {s_step:5d}        {g_step if g_step is not None else 'never':>5}    {ratio}"
        )
    print(
        f"\nfinal val loss: grown {grown_curve[-1][1]:.4f}, scratch {scratch_curve[-1][1]:.4f}; total {time.perf_counter() - t0:.0f}s"
    )


if __name__ == "__main__":
    main()
