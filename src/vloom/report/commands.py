"""Commands this package adds to `vloom` (see COMMAND_MODULES in cli.py): sweep, scaling."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any


def cmd_sweep(args: argparse.Namespace) -> None:
    from vloom.cli import _overrides
    from vloom.sweep import load_study, run_sweep

    overrides = _overrides(args.set or [])
    if args.out:
        overrides["out_dir"] = args.out
    if args.workers:
        overrides["workers"] = args.workers
    if args.executor:
        overrides["executor"] = args.executor
    study = load_study(args.study, overrides)
    out = run_sweep(study, quiet=args.quiet, only=args.run, report_only=args.report)
    if not args.quiet or out["failed"]:
        print(json.dumps({k: v for k, v in out.items()}, indent=None))


def cmd_scaling(args: argparse.Namespace) -> None:
    try:
        from vloom.scaling import scaling_report
    except ImportError as e:  # scipy is what the fit needs beyond the core install
        raise ValueError(f"vloom scaling needs {e.name or 'scipy'} (pip install scipy)") from None

    text = scaling_report(
        args.source,
        budget=args.budget,
        params=args.params,
        loss_key=args.loss_key,
        n_boot=args.bootstrap,
        seed=args.seed,
        out=args.out,
    )
    print(text)


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
    p = add(
        "scaling",
        cmd_scaling,
        "fit L(N, D) = E + A/N^a + B/D^b and the compute-optimal model size for a FLOP budget",
        config=False,
    )
    p.add_argument("source", help="a sweep directory, or a CSV with columns N, D, loss")
    p.add_argument("--budget", type=float, help="training FLOPs for the compute-optimal answer")
    p.add_argument(
        "--params",
        choices=["nonembedding", "total"],
        default="nonembedding",
        help="which parameter count is N (sweep directories; a CSV says it in its columns)",
    )
    p.add_argument(
        "--loss-key", default="text_ppl.loss", help="task.metric of results.json used as the loss"
    )
    p.add_argument("--bootstrap", type=int, default=100, help="bootstrap resamples (0 = none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write the fit as JSON here")
