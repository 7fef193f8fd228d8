"""`vloom eval`: run the configured tasks on a checkpoint and write `results.json`.

Tasks are named by spec (`name` or `name:key=value,...`, see vloom.evaluate.tasks); results
are keyed by the task name (or the full spec when it has parameters, or its `as=` name).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from vloom.evaluate.convert import open_mc_shift
from vloom.evaluate.tasks import EvalContext, get_task, parse_task_spec
from vloom.model.io import load_model
from vloom.model.vlm import VLM
from vloom.sequence import load_tokenizer

RESULTS = "results.json"


def load_checkpoint(
    ckpt_dir: str | Path, tokenizer_path: str | Path | None = None, device: str = "cpu"
) -> tuple[VLM, Tokenizer]:
    """The model in eval mode and its tokenizer (the one the checkpoint names, by default)."""
    ckpt_dir = Path(ckpt_dir)
    model = load_model(ckpt_dir).to(device).eval()
    if tokenizer_path is None:
        meta = json.loads((ckpt_dir / "config.json").read_text())
        tokenizer_path = meta.get("tokenizer")
        if not tokenizer_path:
            raise ValueError(f"{ckpt_dir}: checkpoint names no tokenizer; pass --tokenizer")
    if not Path(tokenizer_path).is_file():
        raise FileNotFoundError(f"{tokenizer_path}: tokenizer file not found")
    return model, load_tokenizer(str(tokenizer_path))


def evaluate(
    ckpt_dir: str | Path,
    eval_dir: str | Path,
    tasks: list[str],
    tokenizer_path: str | Path | None = None,
    batch_size: int = 32,
    max_examples: int | None = None,
    device: str = "cpu",
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    ckpt_dir, eval_dir = Path(ckpt_dir), Path(eval_dir)
    specs = [parse_task_spec(t) for t in tasks]  # unknown names/params fail before any work
    keys = [k for _, _, k in specs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"eval task {dup!r} is listed twice; give one a name with as=NAME")
    if not eval_dir.is_dir():
        raise FileNotFoundError(f"{eval_dir}: evaluation directory does not exist")
    model, tok = load_checkpoint(ckpt_dir, tokenizer_path, device)
    ctx = EvalContext(model, tok, eval_dir, torch.device(device), batch_size, max_examples, seed)
    out: dict[str, dict[str, Any]] = {}
    for name, params, key in specs:
        t = time.perf_counter()
        res = get_task(name)(ctx, **params)
        res["seconds"] = round(time.perf_counter() - t, 2)
        out[key] = res
    if "vqa_open" in out and "vqa_mc_converted" in out:
        out["vqa_mc_converted"].update(open_mc_shift(out["vqa_open"], out["vqa_mc_converted"]))
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
