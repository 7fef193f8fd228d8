"""`vloom eval`: run the configured tasks on a checkpoint and write `results.json`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from vloom.evaluate.tasks import EvalContext, get_task
from vloom.model.io import load_model
from vloom.sequence import load_tokenizer

RESULTS = "results.json"


def evaluate(
    ckpt_dir: str | Path,
    eval_dir: str | Path,
    tasks: list[str],
    tokenizer_path: str | Path | None = None,
    batch_size: int = 32,
    max_examples: int | None = None,
    device: str = "cpu",
) -> dict[str, dict[str, Any]]:
    ckpt_dir, eval_dir = Path(ckpt_dir), Path(eval_dir)
    fns = {t: get_task(t) for t in tasks}  # unknown names fail before any work
    if not eval_dir.is_dir():
        raise FileNotFoundError(f"{eval_dir}: evaluation directory does not exist")
    model = load_model(ckpt_dir).to(device).eval()
    if tokenizer_path is None:
        meta = json.loads((ckpt_dir / "config.json").read_text())
        tokenizer_path = meta.get("tokenizer")
        if not tokenizer_path:
            raise ValueError(f"{ckpt_dir}: checkpoint names no tokenizer; pass --tokenizer")
    tok = load_tokenizer(tokenizer_path)
    ctx = EvalContext(model, tok, eval_dir, torch.device(device), batch_size, max_examples)
    out = {}
    for name, fn in fns.items():
        t = time.perf_counter()
        res = fn(ctx)
        res["seconds"] = round(time.perf_counter() - t, 2)
        out[name] = res
    return out


def write_results(
    run_dir: str | Path, evals: dict[str, Any], config: dict[str, Any], train: dict[str, Any] | None
) -> Path:
    path = Path(run_dir) / RESULTS
    data = {"eval": evals, "config": config}
    if train:
        data["train"] = train
    tmp = path.with_name(f".{RESULTS}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path
