"""`vloom sweep` (see COMMAND_MODULES in cli.py): light to import; the sweep loads inside."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any


def cmd_sweep(args: argparse.Namespace) -> None:
    from vloom.config import parse_overrides
    from vloom.sweep import load_study, run_sweep
    from vloom.sweep.spec import auto_seeds

    overrides = parse_overrides(args.set)
    if args.out:
        overrides["out_dir"] = args.out
    if args.workers:
        overrides["workers"] = args.workers
    if args.executor:
        overrides["executor"] = args.executor
    study = load_study(args.study, overrides)
    if args.plan_seeds:
        from vloom.sweep.run import plan_seeds

        decision = plan_seeds(study)
        if not auto_seeds(study.spec):
            print(f"the study lists seeds {study.spec.seeds}; with `seeds: auto`:")
        print("\n".join(decision.lines()))
        return
    out = run_sweep(study, quiet=args.quiet, only=args.run, report_only=args.report)
    if not args.quiet or out["failed"]:
        print(json.dumps({k: v for k, v in out.items()}, indent=None))


def add_commands(add: Callable[..., Any]) -> None:
    """Register subcommands with `add(name, fn, help, config=True)`; fn receives argparse args."""
    p = add(
        "sweep",
        cmd_sweep,
        "run a study: a grid over config fields x seeds, equal compute, one fine-tuning stage; "
        "writes study.md/.html",
        config=False,
    )
    p.add_argument("study", help="study YAML (base config + grid + seeds + options)")
    p.add_argument("--out", help="sweep directory (default: out_dir from the study)")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a study field, e.g. workers=2"
    )
    p.add_argument("--workers", type=int, default=0, help="runs at a time (default: from study)")
    p.add_argument("--executor", choices=["local", "ray", "slurm"], help="default: from study")
    p.add_argument("--run", metavar="NAME", help="run only this run (what SLURM array tasks do)")
    p.add_argument(
        "--report", action="store_true", help="only (re)write the study report from what is done"
    )
    p.add_argument(
        "--plan-seeds",
        action="store_true",
        help="print the seeds `seeds: auto` would take from the runs done so far, and why; "
        "run nothing",
    )
