"""Resumable checkpoints: weights, optimizer state, RNG and data position.

A checkpoint is written into a temporary directory and renamed into place, so a
directory named `step-NNNNNN`, `stage-<name>` or `final` is always complete; a run
killed mid-write leaves only a `.tmp-*` directory, which the next run deletes. A checkpoint
that replaces one of the same name moves the old one aside first and deletes it only once the
new one is in place; a kill between the two renames leaves the old one as `.old-*`, which the
next run puts back. Under
FSDP the sharded weights are gathered to rank 0 first, so the files are the same as a
one-process run's and resume on any number of ranks; the data position in
`state.json` is global (every rank keeps the same stream cursors).
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from vloom.model.io import model_meta, save_tensors
from vloom.model.vlm import VLM
from vloom.ondisk import (
    OPTIMIZER,
    RUN_CONFIG,
    STATE,
    WEIGHTS,
    atomic_write_json,
    read_json,
    replace_dir,
)


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
    """Write weights (as the VLM names them), optimizer tensors and state.json, then rename.

    An existing checkpoint of the same name stays whole until the new one is complete."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / name
    tmp = ckpt_root / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    sd = dict(weights)
    if vlm.cfg.tie_embeddings:  # tied weights share storage; safetensors keeps one name
        sd.pop("lm.lm_head.weight", None)
    save_tensors({k: v.detach().contiguous().cpu() for k, v in sd.items()}, tmp / WEIGHTS)
    atomic_write_json(tmp / RUN_CONFIG, model_meta(vlm) | (extra_meta or {}))
    save_tensors(optim, tmp / OPTIMIZER)
    atomic_write_json(tmp / STATE, state | {"rng": rng_state()})
    try:
        replace_dir(tmp, final)
    except BaseException:
        _restore_replaced(ckpt_root)
        raise
    return final


def _restore_replaced(ckpt_root: Path) -> None:
    """Put back a checkpoint that `replace_dir` moved aside (as `.old-<name>-<pid>`) when the
    new one never arrived; drop it when the new one did."""
    for old in ckpt_root.glob(".old-*"):
        name = old.name[len(".old-") :].rsplit("-", 1)[0]
        if (ckpt_root / name).exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, ckpt_root / name)


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
    tensors = _load_safetensors(ckpt / OPTIMIZER)
    try:
        state = read_json(ckpt / STATE)
    except OSError as e:
        raise ValueError(f"{ckpt / STATE}: unreadable ({e.strerror})") from None
    set_rng_state(state["rng"])
    return tensors, state


def latest_checkpoint(ckpt_root: Path) -> Path | None:
    """The complete `step-*` or `stage-*` checkpoint with the highest step; stale
    temporary directories are removed and a checkpoint moved aside by a killed save is put
    back."""
    if not ckpt_root.exists():
        return None
    for tmp in ckpt_root.glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    _restore_replaced(ckpt_root)
    best, best_step = None, -1
    for p in sorted([*ckpt_root.glob("step-*"), *ckpt_root.glob("stage-*")]):
        try:
            step = read_json(p / STATE)["step"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if step > best_step:
            best, best_step = p, step
    return best


def prune(ckpt_root: Path, keep: int = 2) -> None:
    """Keep the newest `keep` periodic checkpoints (stage-end ones are kept)."""
    steps = sorted(ckpt_root.glob("step-*"))
    for p in steps[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
