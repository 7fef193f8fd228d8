"""Commands this package adds to `vloom` (see COMMAND_MODULES in cli.py).

    vloom ingest {html,warc,pdf,pairs,hf} INPUTS... --out DIR [--fetch]
                 [--fetch-allow CIDR|HOST ...] [--shard-size N] [--quiet]
                 [--workers N] [--executor local|ray] [--ray-address ADDR]
                 [--option KEY=VALUE ...]   e.g. caption_column=alt_text, min_image_side=64

prints one line of JSON: the ledger (input, kept, dropped, rejected) and the image tallies.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

KINDS = ("html", "warc", "pdf", "pairs", "hf")
# Source-specific options a source reads from `opts.extra` (documented in each source module).
EXTRA_OPTIONS = {
    "caption_column": "pairs: caption column/field name(s), comma-separated",
    "image_column": "pairs, hf: image bytes/path/url column name(s) (pairs: comma-separated)",
    "text_column": "hf: the text / caption / turns column",
    "layout": "hf: documents | pairs | conversation (default: from the columns)",
    "min_image_side": "pdf: skip embedded images smaller than this (pixels)",
    "strip_running_headers": "pdf: remove running headers/footers/page numbers",
    "max_pages": "pdf: read at most this many pages of a PDF (default 2000)",
    "max_pdf_image_bytes": "pdf: keep at most this many image bytes per PDF (default 256 MiB)",
    "max_record_bytes": "warc: reject records declaring a longer Content-Length (default 1 GiB)",
    "warc_reader": "warc: fastwarc (default when installed) | warcio (reads every file with warcio)",
    "fetch_retries": "fetch: retries for transient errors",
    # (IngestOptions fields are options too, e.g. unit_timeout=SECONDS: one unit's time budget)
}


# IngestOptions fields that the runner sets itself, never an option.
INTERNAL_FIELDS = frozenset({"out_dir", "extra", "input_root", "quiet"})


def set_option(opts: Any, key: str, value: Any) -> None:
    """One ingest option: an IngestOptions field by name, else a source's own option (into
    opts.extra); an unknown key is a ValueError listing the known ones."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(opts)} - INTERNAL_FIELDS
    if key in fields:
        setattr(opts, key, value)
    elif key in EXTRA_OPTIONS:
        opts.extra[key] = value
    else:
        known = ", ".join(sorted(fields | EXTRA_OPTIONS.keys()))
        raise ValueError(f"unknown ingest option (known: {known})")


def parse_options(pairs: list[str], opts: Any) -> None:
    """Apply `KEY=VALUE` options (`set_option`), each value read as YAML ("64" -> 64)."""
    import yaml

    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ValueError(f"--option {pair!r}: expected KEY=VALUE")
        try:
            set_option(opts, key, yaml.safe_load(raw))
        except ValueError as e:
            raise ValueError(f"--option {key!r}: {e}") from None


def cmd_ingest(args: argparse.Namespace) -> None:
    from vloom.ingest.base import IngestOptions
    from vloom.ingest.run import run_ingest

    opts = IngestOptions(out_dir=Path(args.out), fetch=args.fetch, fetch_allow=args.fetch_allow)
    if args.min_text_chars is not None:
        opts.min_text_chars = args.min_text_chars
    if args.language:
        opts.language = args.language
    parse_options(args.option, opts)
    led = run_ingest(
        args.kind,
        args.inputs,
        args.out,
        opts,
        quiet=args.quiet,
        shard_size=args.shard_size,
        workers=args.workers,
        executor=args.executor,
        ray_address=args.ray_address,
    )
    summary = {k: v for k, v in led.to_dict().items() if k != "shards"}
    print(json.dumps(summary, sort_keys=True))


def add_commands(add: Callable[..., Any]) -> None:
    """Register subcommands with `add(name, fn, help, config=True)`; fn receives argparse args."""
    p = add(
        "ingest",
        cmd_ingest,
        "turn HTML pages, WARCs, PDFs, image-text pairs or Hugging Face datasets directories "
        "into document shards + ledger.json",
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
        "--fetch-allow",
        action="append",
        default=[],
        metavar="CIDR|HOST",
        help="let --fetch reach this internal network or host (loopback, private and link-local "
        "addresses are refused otherwise), e.g. 127.0.0.1/32; repeatable",
    )
    p.add_argument(
        "--shard-size", type=int, default=1000, help="documents per shard (default 1000)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="ingest whole input files on N processes (or Ray CPUs); resumable after a kill; "
        "the output bytes are the same for any N (default 1)",
    )
    p.add_argument("--executor", choices=("local", "ray"), default="local")
    p.add_argument(
        "--ray-address",
        default=None,
        help='executor ray: "auto" or ray://host:port (default: '
        "a private local Ray with --workers CPUs)",
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
    p.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="source option, e.g. caption_column=alt_text, min_image_side=64, fetch_timeout=5",
    )
