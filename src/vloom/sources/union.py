"""The union stage: every source's documents in one directory that curation reads.

Each document is retagged with its source's name (`Document.source`, which pack keeps as the
row tag; the world's tags become NAME/pairs, NAME/text, NAME/interleaved) and
metadata["data_source"] (what curate's mix groups by for source weights). Documents of real
sources that the held-out split picks go to eval/, never to the shards. Shards are named
`sNN-<name>-NNNNN.parquet` in config order, so curation sees the sources in that order.

ledger.json: input = every row read; kept = documents passed on to curation; dropped
{"held_out": {<source>: n}}; rejected: malformed rows (and unreadable shards, per row).
Its "sources" extra has each source's counts, for the report's funnel.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from vloom.config import ExperimentConfig, SourceConfig
from vloom.doc import Document, Rejected, SchemaError, list_shards, read_shard, write_documents
from vloom.ledger import Ledger
from vloom.ondisk import staged_dir
from vloom.sources.check import SOURCE_KEY
from vloom.sources.heldout import HeldOutSets, is_held_out
from vloom.sources.stage import source_inputs

UNION = "union"
EVAL = "eval"


def _rows(path: Path) -> int:
    try:
        return max(pq.ParquetFile(path).metadata.num_rows, 1)
    except Exception:  # noqa: BLE001 - an unreadable footer counts as one input
        return 1


def _read(paths: list[Path], counts: dict[str, Any], ledger: Ledger) -> Iterator[Document]:
    """Documents of every shard under `paths`; bad rows and bad shards counted rejected."""
    for path in paths:
        for shard in list_shards(path):
            try:
                rows = read_shard(shard)
                for d in rows:
                    counts["input"] += 1
                    ledger.input += 1
                    if isinstance(d, Rejected):
                        counts["rejected"] += 1
                        ledger.reject(d.reason)
                    else:
                        yield d
            except SchemaError as e:
                n = _rows(shard)
                print(f"vloom: skipping bad shard ({n} rows): {e}", file=sys.stderr)
                counts["input"] += n
                counts["rejected"] += n
                ledger.input += n
                ledger.reject("bad_shard", n)


def retag(doc: Document, src: SourceConfig) -> Document:
    tag = src.name
    if src.kind == "synth":
        tag = doc.source if src.name == "synth" else f"{src.name}/{doc.source.rsplit('/', 1)[-1]}"
    return dataclasses.replace(doc, source=tag, metadata={**doc.metadata, SOURCE_KEY: src.name})


def _split(
    docs: Iterator[Document],
    src: SourceConfig,
    per_mille: int,
    counts: dict[str, Any],
    ledger: Ledger,
    held: HeldOutSets,
) -> Iterator[Document]:
    """The source's training documents, retagged; held-out ones go to `held` instead."""
    for d in docs:
        d = retag(d, src)
        if per_mille and is_held_out(d.id, per_mille):
            counts["held_out"] += 1
            ledger.drop("held_out", src.name)
            held.add(d)
            continue
        counts["kept"] += 1
        ledger.kept += 1
        yield d


def build_union(cfg: ExperimentConfig, root: Path, synth_dir: Path, quiet: bool = False) -> Ledger:
    """Write ROOT/union (shards, eval/, ledger.json last, the whole directory staged)."""
    data = cfg.data
    assert data is not None, "build_union needs a data section"
    inputs = source_inputs(data, root, synth_dir / "train")
    ledger, held = Ledger(), HeldOutSets()
    per_source: dict[str, dict[str, Any]] = {}
    with staged_dir(root / UNION, overwrite=True, inputs=[p for ps in inputs for p in ps]) as tmp:
        for i, (src, paths) in enumerate(zip(data.sources, inputs, strict=True)):
            c = per_source[src.name] = {
                "kind": src.kind,
                "input": 0,
                "kept": 0,
                "held_out": 0,
                "rejected": 0,
            }
            split = data.held_out_per_mille if src.kind != "synth" else 0
            docs = _split(_read(paths, c, ledger), src, split, c, ledger, held)
            shards = write_documents(tmp, docs, data.shard_size, f"s{i:02d}-{src.name}")
            c["shards"] = [p.name for p in shards]
        synth_eval = synth_dir / EVAL if data.synth is not None else None
        sets = held.write(tmp / EVAL, synth_eval)
        ledger.extra = {
            "held_out_per_mille": data.held_out_per_mille,
            "sources": per_source,
            "eval": sets,
        }
        ledger.write(tmp)
    if data.real and data.held_out_per_mille and not ledger.dropped:
        print(  # a small source can miss the split by chance: say so before eval reads it
            f"vloom: warning: no document of {', '.join(s.name for s in data.real)} fell in "
            f"the held-out split ({data.held_out_per_mille} per mille); the held-out eval sets "
            "hold no real documents",
            file=sys.stderr,
        )
    if not quiet:
        print(
            f"[vloom] union: {ledger.input} in, {ledger.kept} to curation, "
            f"{ledger.n_dropped} held out ({sets['heldout_text']} texts, {sets['captions']} "
            f"captions), {ledger.n_rejected} rejected",
            flush=True,
        )
    return ledger
