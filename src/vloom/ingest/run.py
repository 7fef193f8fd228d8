"""Run one ingestion source: stream its Documents into OBELICS Parquet shards plus `ledger.json`.

The source counts inputs, drops and rejects (see base.py); the runner counts what it keeps and
writes it. Shards are `shard-00000.parquet`, ... of at most `shard_size` documents (or
`shard_bytes` of image/text payload, whichever comes first), in the order the source yields
them, so the same inputs give byte-identical shards. Image outcomes are tallied in the ledger's
"images" extra (see `record_image`) so a reader sees how many references resolved.

The run is built in a staging directory beside `--out` and renamed into place when its ledger is
written (`ondisk.staged_dir`): a run killed at any point leaves the previous output whole, never
new shards under an old ledger. Files in `--out` that are not the run's own (not a shard, not the
ledger) are carried over into the new directory.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vloom.doc import Document, write_documents
from vloom.ingest.base import IngestError, IngestOptions, get_source
from vloom.ledger import Ledger
from vloom.ondisk import LEDGER, check_out_dir, staged_dir

SHARD_PREFIX = "shard"
_SHARD_RE = re.compile(rf"^{SHARD_PREFIX}-\d{{5}}\.parquet$")

# Reasons meaning "the bytes were there but are not a usable image"; anything else is "missing".
IMAGE_REJECT_REASONS = frozenset(
    {"not_an_image", "undecodable_image", "decompression_bomb", "image_too_large"}
)


def record_image(ledger: Ledger, origin: str, outcome: str) -> None:
    """Count one image reference: `origin` local|remote|data|warc, `outcome` "attached" or a reason.

    ledger.extra["images"] = {"references", "attached", "missing": {reason: n},
    "rejected": {reason: n}, "by_origin": {origin: {"references", "attached"}}}.
    """
    im = ledger.extra.setdefault(
        "images", {"references": 0, "attached": 0, "missing": {}, "rejected": {}, "by_origin": {}}
    )
    im["references"] += 1
    o = im["by_origin"].setdefault(origin, {"references": 0, "attached": 0})
    o["references"] += 1
    if outcome == "attached":
        im["attached"] += 1
        o["attached"] += 1
        return
    bucket = im["rejected"] if outcome in IMAGE_REJECT_REASONS else im["missing"]
    bucket[outcome] = bucket.get(outcome, 0) + 1


def write_stream(
    docs: Iterable[Document],
    out_dir: Path,
    shard_size: int = 1000,
    shard_bytes: int = 128 * 1024 * 1024,
) -> tuple[int, list[Path]]:
    """Write documents as they come into numbered shards; returns (count, shard paths).

    Memory is bounded by one shard. Stale shards of an earlier, larger run are removed so the
    directory holds exactly this run's output.
    """
    n = 0

    def counted() -> Iterator[Document]:
        nonlocal n
        for d in docs:
            n += 1
            yield d

    paths = write_documents(out_dir, counted(), shard_size, SHARD_PREFIX, shard_bytes)
    keep = {p.name for p in paths}
    for old in out_dir.iterdir():
        if _SHARD_RE.match(old.name) and old.name not in keep:
            old.unlink()
    return n, paths


def _check_out_dir(out_dir: Path, inputs: list[Path]) -> Path:
    """The absolute output directory; refused when it is, holds or lies inside an input."""
    for inp in inputs:
        if not inp.exists():
            raise IngestError(f"{inp}: no such file or directory")
    try:
        return check_out_dir(out_dir, inputs)
    except (ValueError, OSError) as e:
        raise IngestError(str(e).replace("output exists", "--out exists")) from None


def _carry_foreign(old: Path, new: Path) -> None:
    """Copy what the user keeps in `old` (anything but our shards and ledger) into `new`."""
    if not old.is_dir():
        return
    for entry in old.iterdir():
        if _SHARD_RE.match(entry.name) or entry.name == LEDGER or (new / entry.name).exists():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, new / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, new / entry.name, follow_symlinks=False)


def run_ingest(
    kind: str,
    inputs: list[str | os.PathLike] | list[Path],
    out_dir: str | os.PathLike,
    opts: IngestOptions | None = None,
    quiet: bool = False,
    shard_size: int = 1000,
    *,
    workers: int = 1,
    executor: str = "local",
    ray_address: str | None = None,
) -> Ledger:
    """Ingest `inputs` with the source `kind` into `out_dir`; returns the (written) ledger.

    `workers` > 1 or `executor` "ray" ingest whole input files in parallel, resumably
    (executor.py); the output bytes are those of the one-process run.
    """
    source = get_source(kind)
    paths = [Path(p) for p in inputs]
    if not paths:
        raise IngestError(f"ingest {kind}: no inputs given")
    if shard_size < 1:
        raise IngestError(f"--shard-size must be >= 1, got {shard_size}")
    if workers < 1:
        raise IngestError(f"--workers must be >= 1, got {workers}")
    if executor not in ("local", "ray"):
        raise IngestError(f"--executor must be local or ray, got {executor!r}")
    out = _check_out_dir(Path(out_dir), paths)
    opts = opts or IngestOptions(out_dir=out)
    opts.out_dir = out  # sources see the absolute output directory (nothing may go elsewhere)
    opts.quiet = opts.quiet or quiet  # a quiet run also keeps the per-unit failure lines off
    if workers > 1 or executor == "ray":
        from vloom.ingest.executor import split

        if split(kind, paths) != []:  # no file at all: the one-process path names the problem
            return _run_parallel(
                kind, paths, out, opts, quiet, shard_size, workers, executor, ray_address
            )
    ledger = Ledger()

    def kept(docs: Iterator[Document]) -> Iterator[Document]:
        bar = tqdm(docs, desc=f"ingest {kind}", unit="doc", disable=quiet, mininterval=1.0)
        for d in bar:
            ledger.kept += 1
            yield d

    with staged_dir(out, overwrite=True, inputs=paths) as tmp:
        _, shards = write_stream(kept(source(paths, ledger, opts)), tmp, shard_size)
        extra: dict[str, Any] = {"source": kind, "shards": [p.name for p in shards]}
        ledger.extra = {**extra, **ledger.extra}
        ledger.write(tmp)
        _carry_foreign(out, tmp)
    return ledger


def _run_parallel(
    kind: str,
    paths: list[Path],
    out: Path,
    opts: IngestOptions,
    quiet: bool,
    shard_size: int,
    workers: int,
    executor: str,
    ray_address: str | None,
) -> Ledger:
    from vloom.ingest.executor import local_map, run_parts

    if executor == "ray":
        from vloom.ingest.ray_executor import ray_map

        with ray_map(workers, ray_address, quiet) as map_fn:
            docs, merged, work = run_parts(kind, paths, out, opts, workers, map_fn, quiet, True)
    else:
        docs, merged, work = run_parts(
            kind, paths, out, opts, workers, local_map, quiet, True, overlap=True
        )
    with staged_dir(out, overwrite=True, inputs=paths) as tmp:
        n, shards = write_stream(docs, tmp, shard_size)
        ledger = merged()
        if n != ledger.kept:
            raise IngestError(f"ingest {kind}: parts hold {n} documents, ledgers say {ledger.kept}")
        extra: dict[str, Any] = {"source": kind, "shards": [p.name for p in shards]}
        ledger.extra = {**extra, **ledger.extra}
        ledger.write(tmp)
        _carry_foreign(out, tmp)
    shutil.rmtree(work, ignore_errors=True)  # the output is in place: the parts are spent
    return ledger
