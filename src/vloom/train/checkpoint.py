"""Resumable checkpoints: weights, optimizer state, RNG and data position.

A checkpoint is written into a temporary directory and renamed into place, so a
directory named `step-NNNNNN` is always complete; a run killed mid-write leaves
only a `.tmp-*` directory, which the next run deletes.
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

from vloom.model.io import WEIGHTS, save_model

OPTIM, STATE = "optimizer.safetensors", "state.json"


def _optim_tensors(opt: torch.optim.Optimizer, names: dict[int, str]) -> dict[str, torch.Tensor]:
    out = {}
    for p, st in opt.state.items():
        for k, v in st.items():
            if torch.is_tensor(v):
                out[f"{names[id(p)]}::{k}"] = v.detach().contiguous().cpu()
    return out


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
    model,
    opt: torch.optim.Optimizer,
    state: dict[str, Any],
    extra_meta: dict | None = None,
) -> Path:
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / name
    tmp = ckpt_root / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    save_model(model, tmp, extra_meta)
    names = {id(p): n for n, p in model.named_parameters()}
    save_file(_optim_tensors(opt, names), str(tmp / OPTIM))
    (tmp / STATE).write_text(json.dumps(state | {"rng": rng_state()}, indent=2) + "\n")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def load_training_state(ckpt: Path, model, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore optimizer tensors (by parameter name) and RNG; return state.json."""
    sd = load_file(str(ckpt / WEIGHTS))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected:
        raise ValueError(f"{ckpt}: checkpoint has weights this model lacks: {unexpected[:3]}")
    tensors = load_file(str(ckpt / OPTIM))
    params = dict(model.named_parameters())
    for key, v in tensors.items():
        pname, k = key.split("::")
        if pname not in params:
            raise ValueError(f"{ckpt}: optimizer state for unknown parameter {pname}")
        opt.state[params[pname]][k] = v
    state = json.loads((ckpt / STATE).read_text())
    set_rng_state(state["rng"])
    return state


def latest_checkpoint(ckpt_root: Path) -> Path | None:
    """The newest complete `step-*` checkpoint; stale temporary directories are removed."""
    if not ckpt_root.exists():
        return None
    for tmp in ckpt_root.glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    steps = sorted(p for p in ckpt_root.glob("step-*") if (p / STATE).exists())
    return steps[-1] if steps else None


def prune(ckpt_root: Path, keep: int = 2) -> None:
    steps = sorted(ckpt_root.glob("step-*"))
    for p in steps[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
