"""`vloom scaling` (see COMMAND_MODULES in cli.py): light to import; scipy loads inside."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


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
