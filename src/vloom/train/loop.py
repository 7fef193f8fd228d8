"""The training loop: AdamW, LR schedule, image schedule, stages, accumulation, checkpoints.

`train()` is resumable by construction: it starts from the newest complete
checkpoint in `out_dir/checkpoints`, whose state holds the step, the RNG and the
data position, so a killed run restarted ends with the same weights as one that
never stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vloom.config import ExperimentConfig
from vloom.model.vlm import VLM, make_targets
from vloom.pack.dataset import PackedStream
from vloom.train.checkpoint import latest_checkpoint, load_training_state, prune, save_checkpoint
from vloom.train.mixture import image_slots, images_on, stage_at
from vloom.train.schedule import lr_at

METRICS, SUMMARY, FINAL = "metrics.jsonl", "train_summary.json", "final"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def use_bf16(precision: str, device: torch.device) -> bool:
    if precision == "bf16":
        return True
    # On CPU bf16 autocast is slower than fp32 for small matmuls; only auto-enable on GPU.
    return precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()


def make_optimizer(model: VLM, cfg: ExperimentConfig, device: torch.device) -> torch.optim.AdamW:
    decay, no_decay = [], []
    seen = set()
    for _, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.train.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    kw: dict[str, Any] = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(groups, lr=cfg.train.lr, betas=tuple(cfg.train.betas), **kw)


def read_packed_stats(packed_dir: Path) -> dict[str, Any]:
    path = packed_dir / "stats.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: packed data is missing or incomplete (run `vloom pack`)")
    return json.loads(path.read_text())


def build_model(cfg: ExperimentConfig, stats: dict[str, Any]) -> VLM:
    model = VLM(cfg.model, stats["vocab_size"], stats["seq_len"], stats["image_size"])
    if model.tokens_per_image != stats["tokens_per_image"]:
        raise ValueError(
            f"packed data has {stats['tokens_per_image']} tokens per image but the model makes "
            f"{model.tokens_per_image}: re-pack with the model's patch size"
        )
    return model


def _batch(rows: list[tuple[np.ndarray, np.ndarray]], device: torch.device):
    tokens = torch.from_numpy(np.stack([r[0] for r in rows]).astype(np.int64))
    ims = [r[1] for r in rows if len(r[1])]
    images = torch.from_numpy(np.concatenate(ims)) if ims else None
    inputs, targets = make_targets(tokens)
    return (
        inputs.to(device, non_blocking=True),
        targets.to(device, non_blocking=True),
        images.to(device, non_blocking=True) if images is not None else None,
    )


def _truncate_metrics(path: Path, before_step: int) -> None:
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) < before_step:
                keep.append(line)
        except json.JSONDecodeError:
            break  # a line cut by a kill: drop it and what follows
    path.write_text("".join(f"{line}\n" for line in keep))


def train(
    cfg: ExperimentConfig, packed_dir: str | Path, out_dir: str | Path, quiet: bool = False
) -> dict[str, Any]:
    packed_dir, out_dir = Path(packed_dir), Path(out_dir)
    tc = cfg.train
    out_dir.mkdir(parents=True, exist_ok=True)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    torch.manual_seed(cfg.seed)
    device = pick_device(tc.device)
    bf16 = use_bf16(tc.precision, device)
    stats = read_packed_stats(packed_dir)
    model = build_model(cfg, stats).to(device)
    opt = make_optimizer(model, cfg, device)
    text = PackedStream(packed_dir, "text", cfg.seed)
    image = PackedStream(packed_dir, "image", cfg.seed + 1)
    needs_images = tc.image_start_fraction < 1.0 and tc.image_text_ratio > 0
    if needs_images and len(image) == 0:
        raise ValueError(
            f"{packed_dir}: the recipe turns images on but there are no image sequences"
        )
    if len(text) == 0 and (tc.image_text_ratio < 1.0 or not needs_images):
        raise ValueError(f"{packed_dir}: the recipe needs text-only sequences but there are none")

    ckpt_root = out_dir / "checkpoints"
    metrics_path = out_dir / METRICS
    if (ckpt_root / FINAL / "state.json").exists() and (out_dir / SUMMARY).exists():
        return json.loads((out_dir / SUMMARY).read_text())  # already complete
    start, tokens_seen, elapsed_before = 0, 0, 0.0
    resumed = latest_checkpoint(ckpt_root)
    if resumed is not None:
        st = load_training_state(resumed, model, opt)
        start, tokens_seen, elapsed_before = st["step"], st["tokens"], st.get("elapsed_s", 0.0)
        text.load_state(st["data"]["text"])
        image.load_state(st["data"]["image"])
        if not quiet:
            print(f"resuming from {resumed} (step {start})")
    else:
        metrics_path.unlink(missing_ok=True)
    _truncate_metrics(metrics_path, start)

    ckpt_meta = {"tokenizer": str((packed_dir / "tokenizer.json").resolve())}
    n_seq = tc.batch_size * tc.grad_accum
    row_tokens = stats["seq_len"]
    t0 = time.perf_counter()
    t_log, tok_log = t0, 0
    cur_stage = -1
    mf = metrics_path.open("a")
    bar = tqdm(
        range(start, tc.steps),
        initial=start,
        total=tc.steps,
        desc="train",
        disable=quiet,
        mininterval=2,
    )
    loss_acc = 0.0
    for step in bar:
        si = stage_at(step, tc)
        if si != cur_stage:
            model.set_trainable(tc.stages[si].trainable)
            cur_stage = si
        lr = lr_at(step, tc)
        for g in opt.param_groups:
            g["lr"] = lr
        slots = image_slots(step, n_seq, tc, cfg.seed)
        step_loss = 0.0
        for micro in range(tc.grad_accum):
            sl = slots[micro * tc.batch_size : (micro + 1) * tc.batch_size]
            n_img = int(sl.sum())
            rows = (image.take(n_img) if n_img else []) + (
                text.take(len(sl) - n_img) if len(sl) > n_img else []
            )
            inputs, targets, images = _batch(rows, device)
            ctx = (
                torch.autocast(device.type, dtype=torch.bfloat16)
                if bf16
                else contextlib.nullcontext()
            )
            with ctx:
                _, loss = model(inputs, images, targets)
            if loss.requires_grad:  # e.g. connector-only stage on a text-only micro-batch
                (loss / tc.grad_accum).backward()
            step_loss += loss.item() / tc.grad_accum
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.requires_grad], tc.grad_clip
            )
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens_seen += n_seq * row_tokens
        tok_log += n_seq * row_tokens
        loss_acc = step_loss
        done = step + 1
        if done % tc.log_every == 0 or done == tc.steps:
            now = time.perf_counter()
            rec = {
                "step": done,
                "loss": round(step_loss, 5),
                "lr": lr,
                "tokens": tokens_seen,
                "tokens_per_s": round(tok_log / max(now - t_log, 1e-9), 1),
                "image_frac": float(slots.mean()),
                "images_on": images_on(step, tc),
                "stage": tc.stages[si].name,
                "elapsed_s": round(elapsed_before + now - t0, 2),
            }
            mf.write(json.dumps(rec) + "\n")
            mf.flush()
            t_log, tok_log = now, 0
            bar.set_postfix(loss=f"{step_loss:.3f}", tok_s=f"{rec['tokens_per_s']:.0f}")
        if done % tc.checkpoint_every == 0 and done < tc.steps:
            state = {
                "step": done,
                "tokens": tokens_seen,
                "elapsed_s": elapsed_before + time.perf_counter() - t0,
                "data": {"text": text.state(), "image": image.state()},
            }
            save_checkpoint(ckpt_root, f"step-{done:06d}", model, opt, state, ckpt_meta)
            prune(ckpt_root)
    mf.close()
    wall = elapsed_before + time.perf_counter() - t0
    state = {
        "step": tc.steps,
        "tokens": tokens_seen,
        "elapsed_s": wall,
        "data": {"text": text.state(), "image": image.state()},
    }
    final = save_checkpoint(ckpt_root, FINAL, model, opt, state, ckpt_meta)
    summary = {
        "steps": tc.steps,
        "tokens": tokens_seen,
        "tokens_per_s": round(tokens_seen / max(wall, 1e-9), 1),
        "wall_s": round(wall, 2),
        "final_loss": round(loss_acc, 5),
        "params": model.num_params(),
        "device": str(device),
        "bf16": bf16,
        "threads": torch.get_num_threads(),
        "checkpoint": str(final),
        "resumed_from": str(resumed) if resumed else None,
        "pid": os.getpid(),
    }
    (out_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
