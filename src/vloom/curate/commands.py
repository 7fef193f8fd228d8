"""Commands this package adds to `vloom` (see COMMAND_MODULES in cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any


def cmd_classifier_train(args: argparse.Namespace) -> None:
    from vloom.curate.classify import read_texts, train_classifier

    if args.epochs < 1:
        raise ValueError(f"--epochs {args.epochs}: must be >= 1")
    pos, pos_skipped = read_texts(args.positive, args.max_docs)
    neg, neg_skipped = read_texts(args.negative, args.max_docs)
    if (pos_skipped or neg_skipped) and not args.quiet:
        print(
            f"vloom classifier-train: skipped {pos_skipped} positive and {neg_skipped} negative "
            "rows (malformed or without text)",
            file=sys.stderr,
        )
    meta = train_classifier(
        pos,
        neg,
        args.out,
        epochs=args.epochs,
        lr=args.lr,
        dim=args.dim,
        word_ngrams=args.word_ngrams,
        seed=args.seed,
        bucket=args.bucket,
    )
    print(json.dumps({"model": args.out, **meta}))


def add_commands(add: Callable[..., Any]) -> None:
    """Register subcommands with `add(name, fn, help, config=True)`; fn receives argparse args."""
    p = add(
        "classifier-train",
        cmd_classifier_train,
        "train a fastText quality classifier (DCLM) from positive and negative document shards",
        config=False,
    )
    p.add_argument("positive", help="shard or directory of documents to keep (high quality)")
    p.add_argument("negative", help="shard or directory of documents to drop (low quality)")
    p.add_argument("--out", required=True, help="model path (.bin); a .json sidecar goes beside")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--dim", type=int, default=64, help="embedding size")
    p.add_argument("--word-ngrams", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bucket", type=int, default=100_000, help="hashed n-gram rows (model size)")
    p.add_argument("--max-docs", type=int, default=None, help="at most this many per class")
