"""`vloom sft-data` (see COMMAND_MODULES in cli.py): the SFT shards of a config's `sft`
section, with a packed directory's tokenizer; light to import."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cmd_sft_data(args: argparse.Namespace) -> None:
    from vloom.cli import _config
    from vloom.config import SFTConfig
    from vloom.ondisk import STATS, TOKENIZER, read_json_object
    from vloom.pack.sft import build_sft_data
    from vloom.sequence import TokenLayout, load_tokenizer

    cfg = _config(args)
    if cfg.sft is None:
        cfg.sft = SFTConfig()  # the world's instruction sets
    packed = Path(args.packed)
    stats = read_json_object(packed / STATS, "packed data stats")
    layout = TokenLayout.from_json(stats.get("token_layout"), f"{packed / STATS}: token_layout")
    tok = load_tokenizer(packed / TOKENIZER, layout)
    out = build_sft_data(cfg, tok, layout, args.out, args.synth, quiet=args.quiet)
    keep = ("rows", "conversations", "truncated", "rejected", "assistant_tokens", "pad_fraction")
    print(json.dumps({k: out[k] for k in keep}))


def add_commands(add: Callable[..., Any]) -> None:
    """Register subcommands with `add(name, fn, help, config=True)`; fn receives argparse args."""
    p = add(
        "sft-data",
        cmd_sft_data,
        "build SFT shards (conversations, loss mask on answers, packed whole) from the sft section",
    )
    p.add_argument("packed", help="a `vloom pack` output directory (its tokenizer and layout)")
    p.add_argument("--out", required=True, help="output directory for the SFT shards")
    p.add_argument("--synth", help="the world (`vloom synth` output) for world sources")
