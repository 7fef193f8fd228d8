"""Commands this package adds to `vloom` (see COMMAND_MODULES in cli.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cmd_tasks(args: argparse.Namespace) -> None:
    from vloom.evaluate.tasks import TASKS

    for name in sorted(TASKS):
        fn = TASKS[name]
        doc = (fn.__doc__ or sys.modules[fn.__module__].__doc__ or "-").strip().splitlines()[0]
        print(f"{name:18} {fn.modality:16} {fn.scoring:16} {doc}")


def run_lm_eval(
    checkpoint: str | Path,
    tasks: list[str],
    include_path: str | Path | None = None,
    tokenizer: str | None = None,
    limit: int | None = None,
    num_fewshot: int | None = None,
    batch_size: int = 16,
    quiet: bool = True,
    builtin_tasks: bool = True,
) -> dict[str, Any]:
    """lm_eval.simple_evaluate on a vloom checkpoint, offline; returns lm_eval's `results`."""
    # Datasets come from local files only: no hub look-ups at run time.
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import lm_eval
    from lm_eval.tasks import TaskManager

    from vloom.evaluate.lm_eval_adapter import VloomLM

    if include_path is not None and not Path(include_path).is_dir():
        raise FileNotFoundError(f"{include_path}: --include-path is not a directory")
    if not builtin_tasks and include_path is None:
        raise ValueError("--only-include-path needs --include-path")
    lm = VloomLM(str(checkpoint), tokenizer, batch_size=batch_size, quiet=quiet)  # fails fast
    # Indexing lm_eval's thousands of built-in task files takes a while; skippable.
    tm = TaskManager(
        include_path=str(include_path) if include_path else None, include_defaults=builtin_tasks
    )
    unknown = [t for t in tasks if t not in tm.all_tasks]
    if unknown:
        raise ValueError(f"unknown lm-eval task(s): {', '.join(unknown)}")
    res = lm_eval.simple_evaluate(
        model=lm,
        tasks=tasks,
        num_fewshot=num_fewshot,
        limit=limit,
        task_manager=tm,
        log_samples=False,
        verbosity="ERROR" if quiet else "INFO",
    )
    return res["results"] if res else {}


def cmd_lm_eval(args: argparse.Namespace) -> None:
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not tasks:
        raise ValueError("--tasks: give at least one lm-eval task name")
    results = run_lm_eval(
        args.checkpoint,
        tasks,
        args.include_path,
        args.tokenizer,
        args.limit,
        args.num_fewshot,
        args.batch_size,
        args.quiet,
        not args.only_include_path,
    )
    text = json.dumps(results, indent=2, default=str)
    if args.out:
        from vloom.ondisk import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    print(text)


def add_commands(add: Callable[..., Any]) -> None:
    """Register subcommands with `add(name, fn, help, config=True)`; fn receives argparse args."""
    add("tasks", cmd_tasks, "list the evaluation tasks: name, modality, scoring", config=False)
    p = add(
        "lm-eval",
        cmd_lm_eval,
        "score a checkpoint on lm-evaluation-harness tasks (local data only)",
        config=False,
    )
    p.add_argument("checkpoint", help="checkpoint directory (model.safetensors + config.json)")
    p.add_argument("--tasks", required=True, help="comma-separated lm-eval task names")
    p.add_argument("--include-path", help="directory of extra task YAMLs (e.g. local data)")
    p.add_argument("--tokenizer", help="tokenizer.json (default: the one the checkpoint names)")
    p.add_argument(
        "--only-include-path",
        action="store_true",
        help="look tasks up in --include-path only (skips indexing lm_eval's built-in tasks)",
    )
    p.add_argument("--limit", type=int, help="examples per task (default: all)")
    p.add_argument("--num-fewshot", type=int, help="few-shot examples (default: the task's)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", help="also write the results JSON here")
