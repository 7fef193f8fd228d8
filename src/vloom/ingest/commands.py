"""Commands this package adds to `vloom` (see COMMAND_MODULES in cli.py).

    vloom ingest {html,warc,pdf,pairs} INPUTS... --out DIR [--fetch] [--shard-size N] [--quiet]

prints one line of JSON: the ledger (input, kept, dropped, rejected) and the image tallies.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

KINDS = ("html", "warc", "pdf", "pairs")


def cmd_ingest(args: argparse.Namespace) -> None:
    from vloom.ingest.base import IngestOptions
    from vloom.ingest.run import run_ingest

    opts = IngestOptions(out_dir=Path(args.out), fetch=args.fetch)
    if args.min_text_chars is not None:
        opts.min_text_chars = args.min_text_chars
    if args.language:
        opts.language = args.language
    led = run_ingest(
        args.kind, args.inputs, args.out, opts, quiet=args.quiet, shard_size=args.shard_size
    )
    summary = {k: v for k, v in led.to_dict().items() if k != "shards"}
    print(json.dumps(summary, sort_keys=True))


def add_commands(add: Callable[..., Any]) -> None:
    """Register subcommands with `add(name, fn, help, config=True)`; fn receives argparse args."""
    p = add(
        "ingest",
        cmd_ingest,
        "turn HTML pages, WARCs, PDFs or image-text pairs into document shards + ledger.json",
        config=False,
    )
    p.add_argument("kind", choices=KINDS, help="source kind")
    p.add_argument("inputs", nargs="+", help="files or directories (walked, sorted)")
    p.add_argument("--out", required=True, help="output directory (shards and ledger.json)")
    p.add_argument(
        "--fetch",
        action="store_true",
        help="download http(s) images pages reference (off: no network)",
    )
    p.add_argument(
        "--shard-size", type=int, default=1000, help="documents per shard (default 1000)"
    )
    p.add_argument(
        "--min-text-chars",
        type=int,
        default=None,
        help="drop pages with less main text than this (default 1)",
    )
    p.add_argument(
        "--language", default=None, help="set every document's language (default: from input)"
    )
