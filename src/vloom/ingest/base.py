"""The contract every ingestion source follows.

A source is a function `(inputs, ledger, opts) -> Iterator[Document]`:
- `inputs` are the paths the user named (files or directories; the source walks directories);
- for every input unit (a page, a PDF, a pair, a WARC record) it calls `ledger.input += 1`
  and then either yields a Document (the runner counts it kept) or calls
  `ledger.reject(reason)` with a short named reason ("html_too_deep", "pdf_encrypted", ...);
  a source may also `ledger.drop(<kind>, reason)` for inputs it skips on purpose (e.g. a page
  with no content, a scanned PDF page); it never raises for one bad input;
- it never writes outside `opts.out_dir`, and reads only what it was pointed at (plus the
  network when `opts.fetch` is on).
Sources register by name in `SOURCES` as "module:function" so the CLI imports only the one used.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vloom.doc import Document
from vloom.ledger import Ledger


class IngestError(ValueError):
    """An ingestion input or option that cannot be used at all; the message is one line."""


@dataclass
class IngestOptions:
    out_dir: Path
    fetch: bool = False  # download http(s) images (off by default: no network unless asked)
    fetch_workers: int = 8
    fetch_timeout: float = 10.0
    # networks/hosts fetch may reach although internal (loopback, private...): "10.0.0.0/8", "::1"
    fetch_allow: list[str] = field(default_factory=list)
    max_image_bytes: int = 20 * 1024 * 1024
    min_text_chars: int = 1  # a page whose main text is shorter is dropped ("no_content")
    language: str | None = None  # override for every document; default: from the input
    extra: dict = field(default_factory=dict)  # source-specific options


def inside_root(path: Path, root: Path) -> bool:
    """True when `path`, with every symlink followed, lies under `root` (also resolved)."""
    try:
        real, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    except (OSError, ValueError):
        return False
    return real == base or base in real.parents


def read_regular_file(path: Path, max_bytes: int | None = None) -> bytes:
    """Read a regular file; a FIFO, device, socket or directory raises OSError before any read
    blocks, and a file over `max_bytes` raises ValueError ("file_too_large") unread.

    The file is opened non-blocking and checked with fstat on the open descriptor, so a path
    swapped for a FIFO between a check and the open cannot hang the run.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path}: not a regular file")
        if max_bytes is not None and st.st_size > max_bytes:
            raise ValueError(f"{path}: file_too_large ({st.st_size} > {max_bytes} bytes)")
        with os.fdopen(fd, "rb", closefd=True) as f:
            fd = -1
            data = f.read() if max_bytes is None else f.read(max_bytes + 1)
        if max_bytes is not None and len(data) > max_bytes:  # it grew after the fstat
            raise ValueError(f"{path}: file_too_large (> {max_bytes} bytes)")
        return data
    finally:
        if fd >= 0:
            os.close(fd)


Source = Callable[[list[Path], Ledger, IngestOptions], Iterator[Document]]

SOURCES: dict[str, str] = {
    "html": "vloom.ingest.html:ingest_html",
    "warc": "vloom.ingest.warc:ingest_warc",
    "pdf": "vloom.ingest.pdf:ingest_pdf",
    "pairs": "vloom.ingest.pairs:ingest_pairs",
    "hf": "vloom.ingest.hf_dataset:ingest_hf",
}


def get_source(kind: str) -> Source:
    import importlib

    if kind not in SOURCES:
        raise IngestError(f"unknown source kind {kind!r}; known: {', '.join(sorted(SOURCES))}")
    mod, fn = SOURCES[kind].split(":")
    return getattr(importlib.import_module(mod), fn)
