"""Commands this package adds to `vloom` (see COMMAND_MODULES in cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any


def cmd_grow(args: argparse.Namespace) -> None:
    from vloom.model.grow import grow_checkpoint

    info = grow_checkpoint(
        args.checkpoint, args.out, args.width_factor, args.noise, args.seed, args.grow_vision
    )
    print(json.dumps(info))


def cmd_export(args: argparse.Namespace) -> None:
    from vloom.model.hf_export import export_checkpoint

    info = export_checkpoint(args.checkpoint, args.out, args.tokenizer)
    if info["tokenizer"] is None:
        print(
            f"vloom: note: {args.checkpoint} names no tokenizer; exported without one "
            "(pass --tokenizer PATH/tokenizer.json)",
            file=sys.stderr,
        )
    print(json.dumps(info))


def cmd_import_hf(args: argparse.Namespace) -> None:
    from vloom.model.hf_import import import_checkpoint

    info = import_checkpoint(args.hf_dir, args.out, args.max_seq_len, args.image_size)
    print(json.dumps(info))


def add_commands(add: Callable[..., Any]) -> None:
    """Register subcommands with `add(name, fn, help, config=True)`; fn receives argparse args."""
    p = add(
        "grow",
        cmd_grow,
        "widen a checkpoint by an integer factor, computing the same function (HyperCloning)",
        config=False,
    )
    p.add_argument("checkpoint", help="checkpoint directory (model.safetensors + config.json)")
    p.add_argument("--width-factor", required=True, help="integer width multiplier, e.g. 2")
    p.add_argument("--out", required=True, help="output checkpoint directory")
    p.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="std of symmetry-breaking noise that cancels across copies (default 0)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for the noise")
    p.add_argument(
        "--grow-vision",
        action="store_true",
        help="widen the vision encoder too (default: keep it, widen only the connector output)",
    )
    p = add(
        "export",
        cmd_export,
        "write a checkpoint as a Hugging Face transformers model directory (Llama / Qwen2 LM)",
        config=False,
    )
    p.add_argument("checkpoint", help="checkpoint directory (model.safetensors + config.json)")
    p.add_argument("--out", required=True, help="output directory for from_pretrained")
    p.add_argument("--tokenizer", help="tokenizer.json (default: the one the checkpoint names)")
    p = add(
        "import-hf",
        cmd_import_hf,
        "make a vloom checkpoint from a local Llama / Qwen2 / SmolLM transformers directory",
        config=False,
    )
    p.add_argument("hf_dir", help="local directory with config.json + *.safetensors")
    p.add_argument("--out", required=True, help="output checkpoint directory")
    p.add_argument(
        "--max-seq-len",
        type=int,
        default=None,
        help="positions the vloom model supports (default: min(max_position_embeddings, 4096))",
    )
    p.add_argument(
        "--image-size", type=int, default=32, help="image side for the (new) vision encoder"
    )
