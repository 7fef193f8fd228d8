"""Resumable checkpoints: weights, optimizer state, RNG and data position.

A checkpoint is written into a temporary directory and renamed into place, so a
directory named `step-NNNNNN`, `stage-<name>` or `final` is always complete; a run
killed mid-write leaves only a `.tmp-*` directory, which the next run deletes. Under
FSDP the sharded weights are gathered to rank 0 first, so the files are the same as a
one-process run's and resume on any number of ranks; the data position in
`state.json` is global (every rank keeps the same stream cursors).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vloom.model.io import CONFIG, WEIGHTS, model_meta
from vloom.model.vlm import VLM

OPTIM, STATE = "optimizer.safetensors", "state.json"


def rng_state() -> dict[str, Any]:
    # Only torch's generator is global state here: the data order and the image mixture
    # are pure functions of (seed, epoch/step), so they need no saved RNG.
    return {"torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()}


def set_rng_state(st: dict[str, Any]) -> None:
    torch.set_rng_state(
        torch.frombuffer(bytearray(base64.b64decode(st["torch"])), dtype=torch.uint8)
    )


def save_checkpoint(
    ckpt_root: Path,
    name: str,
    vlm: VLM,
    weights: dict[str, torch.Tensor],
    optim: dict[str, torch.Tensor],
    state: dict[str, Any],
    extra_meta: dict | None = None,
) -> Path:
    """Write weights (as the VLM names them), optimizer tensors and state.json, then rename."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / name
    tmp = ckpt_root / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    sd = dict(weights)
    if vlm.cfg.tie_embeddings:  # tied weights share storage; safetensors keeps one name
        sd.pop("lm.lm_head.weight", None)
    save_file({k: v.detach().contiguous().cpu() for k, v in sd.items()}, str(tmp / WEIGHTS))
    meta = model_meta(vlm) | (extra_meta or {})
    (tmp / CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
    save_file(optim, str(tmp / OPTIM))
    (tmp / STATE).write_text(json.dumps(state | {"rng": rng_state()}, indent=2) + "\n")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing (not a complete checkpoint)")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for truncated files
        raise ValueError(f"{path}: corrupt safetensors file ({e})") from None


def load_weights(vlm: VLM, ckpt: str | Path) -> None:
    """Load a checkpoint's weights into `vlm`; a foreign architecture is a one-line error
    naming the first mismatched tensor and both shapes."""
    ckpt = Path(ckpt)
    if not ckpt.is_dir():
        raise FileNotFoundError(f"{ckpt}: checkpoint directory does not exist")
    path = ckpt / WEIGHTS
    sd = _load_safetensors(path)
    own = vlm.state_dict()
    for k, v in sd.items():
        if k not in own:
            raise ValueError(
                f"{path}: weight {k} does not exist in this model (another architecture)"
            )
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(
                f"{path}: {k} has shape {tuple(v.shape)} in the checkpoint but "
                f"{tuple(own[k].shape)} in this model (another architecture)"
            )
    missing = [
        k for k in own if k not in sd and not (k == "lm.lm_head.weight" and vlm.cfg.tie_embeddings)
    ]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks weights this model has: {missing[:3]}")
    vlm.load_state_dict(sd, strict=False)


def load_training_state(ckpt: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer tensors and state.json of a checkpoint; restores the RNG."""
    tensors = _load_safetensors(ckpt / OPTIM)
    try:
        state = json.loads((ckpt / STATE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{ckpt / STATE}: unreadable ({e})") from None
    set_rng_state(state["rng"])
    return tensors, state


def latest_checkpoint(ckpt_root: Path) -> Path | None:
    """The complete `step-*` or `stage-*` checkpoint with the highest step; stale
    temporary directories are removed."""
    if not ckpt_root.exists():
        return None
    for tmp in ckpt_root.glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    best, best_step = None, -1
    for p in sorted([*ckpt_root.glob("step-*"), *ckpt_root.glob("stage-*")]):
        try:
            step = json.loads((p / STATE).read_text())["step"]
        except (OSError, ValueError, KeyError):
            continue
        if step > best_step:
            best, best_step = p, step
    return best


def prune(ckpt_root: Path, keep: int = 2) -> None:
    """Keep the newest `keep` periodic checkpoints (stage-end ones are kept)."""
    steps = sorted(ckpt_root.glob("step-*"))
    for p in steps[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
