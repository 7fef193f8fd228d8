"""`vloom eval`: run the configured tasks on a checkpoint and write `results.json`.

Tasks are named by spec (`name` or `name:key=value,...`, see vloom.evaluate.tasks); results
are keyed by the task name (or the full spec when it has parameters, or its `as=` name).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from vloom.evaluate.convert import open_mc_shift
from vloom.evaluate.records import EXAMPLES, write_examples
from vloom.evaluate.tasks import EvalContext, get_task, parse_task_spec
from vloom.model.io import load_model
from vloom.model.vlm import VLM
from vloom.ondisk import RESULTS, RUN_CONFIG, atomic_write_json, read_json
from vloom.sequence import load_tokenizer

__all__ = [
    "RESULTS",
    "EvalResults",
    "evaluate",
    "load_checkpoint",
    "parse_tasks",
    "resolve_device",
    "run_tasks",
    "write_results",
]


def resolve_device(name: str) -> torch.device:
    """ "auto" = cuda when available, else cpu; an explicit device must exist and hold data.

    One-line ValueErrors instead of torch's own: an unknown name, a `meta` device (no data:
    every score would be garbage) or a cuda/mps device this machine does not have.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(
            f"eval device {name!r}: not a device (auto, cpu, cuda, cuda:N, mps)"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"eval device {name!r}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"eval device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"eval device {name!r}: MPS is not available on this machine")
    elif dev.type != "cpu":
        raise ValueError(f"eval device {name!r}: evaluation runs on auto, cpu, cuda or mps")
    return dev


def load_checkpoint(
    ckpt_dir: str | Path,
    tokenizer_path: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> tuple[VLM, Tokenizer]:
    """The model in eval mode on `device` and its tokenizer (the checkpoint's, by default)."""
    ckpt_dir = Path(ckpt_dir)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    model = load_model(ckpt_dir).to(dev).eval()
    if tokenizer_path is None:
        meta = read_json(ckpt_dir / RUN_CONFIG)
        tokenizer_path = meta.get("tokenizer")
        if not tokenizer_path:
            raise ValueError(f"{ckpt_dir}: checkpoint names no tokenizer; pass --tokenizer")
    if not Path(tokenizer_path).is_file():
        raise FileNotFoundError(f"{tokenizer_path}: tokenizer file not found")
    return model, load_tokenizer(str(tokenizer_path), model.layout)


def load_for_harness(
    pretrained: str | Path, tokenizer: str | Path | None, device: str | None, batch_size: int | str
) -> tuple[VLM, Tokenizer, torch.device, int]:
    """What the lm-eval and lmms-eval adapters start from: the model in eval mode on its device,
    its tokenizer, that device, and a batch size (the harnesses' "auto" means 16 here)."""
    model, tok = load_checkpoint(Path(pretrained), tokenizer, str(device or "cpu"))
    size = int(batch_size) if str(batch_size).isdigit() else 16
    return model, tok, next(model.parameters()).device, size


class EvalResults(dict):
    """Task results keyed like results.json's "eval", plus `examples`: each task's
    per-example records (written by write_results to RUN/examples/, not into results.json)."""

    def __init__(self, results: dict[str, dict[str, Any]], examples: dict[str, list]) -> None:
        super().__init__(results)
        self.examples = examples


def evaluate(
    ckpt_dir: str | Path,
    eval_dir: str | Path,
    tasks: list[str],
    tokenizer_path: str | Path | None = None,
    batch_size: int = 32,
    max_examples: int | None = None,
    device: str = "cpu",
    seed: int = 0,
) -> EvalResults:
    """Run `tasks` on the checkpoint on `device` ("auto": cuda when available; callers pass
    `eval.device`); `seed` picks few-shot examples and converted-option order. The per-example
    records ride along as `.examples`."""
    ckpt_dir, eval_dir = Path(ckpt_dir), Path(eval_dir)
    specs = parse_tasks(tasks, eval_dir)
    dev = resolve_device(device)  # before the model loads: a bad device is a one-line error
    model, tok = load_checkpoint(ckpt_dir, tokenizer_path, dev)
    ctx = EvalContext(model, tok, eval_dir, dev, batch_size, max_examples, seed)
    examples: dict[str, list] = {}
    from vloom.train.denormal import flush_denormals  # here: vloom.train imports this module

    with flush_denormals(dev):  # as training does on CPU: denormals slow every op they reach
        results = run_tasks(ctx, specs, examples)
    return EvalResults(results, examples)


TaskSpec = tuple[str, dict[str, Any], str]  # (task name, params, results key)


def parse_tasks(tasks: list[str], eval_dir: Path) -> list[TaskSpec]:
    """Parsed task specs; unknown names or parameters, a results key listed twice or a missing
    evaluation directory are one-line errors before any work (the training loop checks its
    in-training tasks with this before its first step)."""
    specs = [parse_task_spec(t) for t in tasks]
    keys = [k for _, _, k in specs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"eval task {dup!r} is listed twice; give one a name with as=NAME")
    if not Path(eval_dir).is_dir():
        raise FileNotFoundError(f"{eval_dir}: evaluation directory does not exist")
    return specs


def run_tasks(
    ctx: EvalContext, specs: list[TaskSpec], examples: dict[str, list] | None = None
) -> dict[str, dict[str, Any]]:
    """Each task's results on `ctx.model` (already in eval mode), keyed by its results key.
    With `examples`, tasks also return their per-example records (ctx.records), which go
    there under the same key, never into the results; without it (evaluation during
    training) none are made."""
    ctx = dataclasses.replace(ctx, records=examples is not None)
    out: dict[str, dict[str, Any]] = {}
    for name, params, key in specs:
        t = time.perf_counter()
        res = get_task(name)(ctx, **params)
        recs = res.pop(EXAMPLES, None)
        if recs is not None and examples is not None:
            examples[key] = recs
        res["seconds"] = round(time.perf_counter() - t, 2)
        out[key] = res
    if "vqa_open" in out and "vqa_mc_converted" in out:
        out["vqa_mc_converted"].update(open_mc_shift(out["vqa_open"], out["vqa_mc_converted"]))
    return out


def write_results(
    run_dir: str | Path, evals: dict[str, Any], config: dict[str, Any], train: dict[str, Any] | None
) -> Path:
    """RUN/examples/<task>.jsonl (when `evals` carries records, as `evaluate`'s do), then
    RUN/results.json: written last, it marks the evaluation complete."""
    path = Path(run_dir) / RESULTS
    records = getattr(evals, "examples", None)
    if records is not None:
        write_examples(run_dir, records)
    data = {"eval": dict(evals), "config": config}
    if train:
        data["train"] = train
    return atomic_write_json(path, data)
