"""`vloom serve` (see COMMAND_MODULES in cli.py); light to import."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any


def cmd_serve(args: argparse.Namespace) -> None:
    from vloom.serve.engine import Engine
    from vloom.serve.protocol import Limits
    from vloom.serve.server import Server

    engine = Engine(
        args.checkpoint,
        name=args.name,
        tokenizer=args.tokenizer,
        device=args.device,
        template=args.template,
        max_batch=args.max_batch,
        max_new_tokens=args.max_new_tokens,
        max_pending=args.max_pending,
        batch_wait_s=args.batch_wait_ms / 1000,
    )
    limits = Limits(
        max_body_bytes=args.max_body_mb << 20,
        max_image_bytes=args.max_image_mb << 20,
        max_images=args.max_images,
    )
    srv = Server((args.host, args.port), engine, limits, args.request_timeout, args.quiet)
    # the one line a script waits for (port 0 picks a free port: it names the real one)
    print(f"[vloom] serve: {engine.name} on {srv.url}/v1 (context {engine.context})", flush=True)
    try:
        srv.serve_forever()
    finally:
        srv.server_close()
        engine.close()
        print("[vloom] serve: stopped", file=sys.stderr)


def add_commands(add: Callable[..., Any]) -> None:
    """Register subcommands with `add(name, fn, help, config=True)`; fn receives argparse args."""
    p = add(
        "serve",
        cmd_serve,
        "serve a checkpoint over an OpenAI-compatible HTTP API (/v1/chat/completions)",
        config=False,
    )
    p.add_argument("checkpoint", help="checkpoint directory (model.safetensors + config.json)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8000, help="port (0: a free one)")
    p.add_argument(
        "--name", default="vloom", help="the model name clients send and /v1/models lists"
    )
    p.add_argument("--tokenizer", help="tokenizer.json (default: the one the checkpoint names)")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda:N, mps")
    p.add_argument(
        "--template", default="auto", choices=("auto", "vloom", "hf"), help="chat template"
    )
    p.add_argument("--max-batch", type=int, default=32, help="most prompts in one sampling call")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=512,
        help="new tokens when a request sets no max_tokens",
    )
    p.add_argument(
        "--batch-wait-ms",
        type=float,
        default=0.0,
        help="how long a batch waits for more requests to join it (0: only those waiting)",
    )
    p.add_argument("--max-pending", type=int, default=256, help="queued requests before a 503")
    p.add_argument("--max-body-mb", type=int, default=32, help="largest request body (MiB)")
    p.add_argument("--max-image-mb", type=int, default=8, help="largest decoded image (MiB)")
    p.add_argument("--max-images", type=int, default=16, help="most images in one request")
    p.add_argument(
        "--request-timeout", type=float, default=600.0, help="seconds before a 504 for one request"
    )
