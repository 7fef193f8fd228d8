"""Benchmarks during training (`eval.during_training`): registered tasks run on the model being
trained, so the report plots benchmark curves against tokens seen, as the research does.

Policy: an evaluation runs before the first step of a fresh run (step 0, the starting point;
it also surfaces a missing eval file before any training), after every `every` steps (or each
time tokens seen crosses a multiple of `every_tokens`) and after the last step. Each task
sees its first `max_examples` examples, the same subset every time, with `eval.batch_size`
and the seed of the final eval, so a point equals `vloom eval` with eval.max_examples=N on
that step's weights. Cost: one forward pass per example and task, on the training device,
with the torch RNG forked so training draws the same numbers with or without it.

Where: rank 0 evaluates its own replica (under DDP every rank holds the same weights) while
the others wait at a barrier; FSDP shards the weights, which would have to be gathered for
every evaluation, so it is refused before training.

A record per evaluation goes to metrics.jsonl: {"step", "tokens", "eval_s",
"eval/<task>/<metric>": value} for every scalar metric a task returns.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from vloom.config import ExperimentConfig
from vloom.evaluate.harness import parse_tasks, run_tasks
from vloom.evaluate.tasks import EvalContext
from vloom.model.vlm import VLM
from vloom.sequence import load_tokenizer

PREFIX = "eval/"


def eval_key(task: str, metric: str) -> str:
    """The metrics.jsonl key of one task's metric."""
    return f"{PREFIX}{task}/{metric}"


def flatten(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """{eval/<task>/<metric>: value} for each finite scalar metric (nested tables and the
    task's own `seconds` are left to the final eval's results.json)."""
    out = {}
    for task, metrics in results.items():
        for name, v in metrics.items():
            if name == "seconds" or isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if math.isfinite(v):
                out[eval_key(task, name)] = v
    return out


class DuringTraining:
    """The in-training evaluator of one run: when it is due and what it records."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        eval_dir: str | Path | None,
        tokenizer_path: str | Path,
        layout: Any,
        fsdp: bool,
    ) -> None:
        dt, ev = cfg.eval.during_training, cfg.eval
        if eval_dir is None:
            raise ValueError(
                "eval.during_training needs the evaluation directory: `vloom run` passes it; "
                "give `vloom train` --eval-dir DIR"
            )
        if fsdp:
            raise ValueError(
                "eval.during_training is not supported with train.parallel=fsdp (the sharded "
                "weights would be gathered at every evaluation): use ddp or turn it off"
            )
        self.eval_dir = Path(eval_dir)
        self.specs = parse_tasks(ev.during_tasks, self.eval_dir)  # one-line errors, before step 0
        self.tokenizer = load_tokenizer(str(tokenizer_path), layout)
        self.every, self.every_tokens = dt.every, dt.every_tokens
        self.max_examples, self.batch_size = dt.max_examples, ev.batch_size
        self.seed = ev.seed if dt.seed is None else dt.seed
        self.total_s = 0.0  # this invocation's evaluation time (the summary's eval_s)

    def due(self, done: int, tokens: int, step_tokens: int, last: bool) -> bool:
        """Whether to evaluate after step `done`, `tokens` seen, `step_tokens` of them in it."""
        if last:
            return True
        if self.every is not None:
            return done % self.every == 0
        assert self.every_tokens is not None
        return tokens // self.every_tokens > (tokens - step_tokens) // self.every_tokens

    def record(self, model: VLM, device: torch.device, step: int, tokens: int) -> dict[str, Any]:
        """Evaluate `model` (eval mode for the call, its previous mode after) and return the
        metrics.jsonl record; called on rank 0 only."""
        t = time.perf_counter()
        was_training = model.training
        ctx = EvalContext(
            model,
            self.tokenizer,
            self.eval_dir,
            device,
            self.batch_size,
            self.max_examples,
            self.seed,
        )
        # the CPU generator always; the training device's too when it is a GPU
        devices = [device.index or torch.cuda.current_device()] if device.type == "cuda" else []
        try:
            model.eval()
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                results = run_tasks(ctx, self.specs)
        finally:
            model.train(was_training)
        dt = time.perf_counter() - t
        self.total_s += dt
        return {"step": step, "tokens": tokens, "eval_s": round(dt, 3), **flatten(results)}
