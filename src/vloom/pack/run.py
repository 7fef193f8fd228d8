"""`vloom pack`: documents -> tokenizer.json + packed safetensors shards + ledger + stats."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vloom.config import ExperimentConfig
from vloom.doc import Rejected, SchemaError, list_shards, read_shard
from vloom.ledger import Ledger
from vloom.media import ImageError
from vloom.pack.images import max_image_tokens, prepare_image
from vloom.pack.packing import PackedShardWriter, Packer
from vloom.pack.tokenizer import train_tokenizer
from vloom.sequence import blocks, load_tokenizer

STATS_FILE = "stats.json"
TOKENIZER_FILE = "tokenizer.json"
STREAMS = ("text", "image")


def tokens_per_image(cfg: ExperimentConfig) -> int:
    """Tokens of one `pack.image_size` square image (every image in fixed mode; with dynamic
    resolution the nominal count the model reports, images vary around it)."""
    side = cfg.pack.image_size
    p = cfg.model.vision.patch_size * cfg.model.vision.merge
    if side % p:
        raise ValueError(
            f"pack.image_size={side} is not a multiple of model.vision.patch_size x merge = {p}"
        )
    return (side // p) ** 2


def _iter_docs(in_dir: Path, ledger: Ledger):
    for shard in list_shards(in_dir):
        try:
            yield from read_shard(shard)  # a bad schema raises before the first row
        except SchemaError as e:
            print(f"error: {e}")
            ledger.input += 1
            ledger.reject("bad_shard")


def run_pack(
    in_dir: str | Path, out_dir: str | Path, cfg: ExperimentConfig, quiet: bool = False
) -> dict[str, Any]:
    """Pack every document of `in_dir`; a document with an undecodable image is rejected, not fatal."""
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.exists():
        raise FileNotFoundError(f"{in_dir}: input directory does not exist")
    if out_dir.exists():
        shutil.rmtree(out_dir)  # a partial pack is worthless: start clean
    out_dir.mkdir(parents=True)
    pc, vc = cfg.pack, cfg.model.vision
    k = tokens_per_image(cfg)
    dynamic = vc.resolution == "dynamic"
    k_max = max_image_tokens(vc, pc.image_size)
    if k_max > pc.seq_len:
        field = "model.vision.max_pixels" if dynamic else "pack.image_size"
        raise ValueError(
            f"an image can make {k_max} tokens but rows hold pack.seq_len={pc.seq_len}: "
            f"lower {field} or raise pack.seq_len"
        )
    image_tokens: list[int] = []

    def texts_for_tokenizer():
        led = Ledger()
        for d in itertools.islice(_iter_docs(in_dir, led), pc.tokenizer_docs):
            if not isinstance(d, Rejected):
                yield d.text

    train_tokenizer(texts_for_tokenizer(), pc.vocab_size, out_dir / TOKENIZER_FILE)
    tok = load_tokenizer(out_dir / TOKENIZER_FILE)

    row_len = pc.seq_len + 1
    source_ids: dict[str, int] = {}  # one name -> id map for both streams
    packers = {
        s: Packer(
            PackedShardWriter(
                out_dir,
                s,
                row_len,
                pc.image_size,
                pc.shard_sequences,
                source_ids,
                patch=(vc.patch_size, vc.merge) if dynamic else None,
            )
        )
        for s in STREAMS
    }
    ledger = Ledger()
    docs = _iter_docs(in_dir, ledger)
    for d in tqdm(docs, desc="pack", unit="doc", disable=quiet, mininterval=2):
        ledger.input += 1
        if isinstance(d, Rejected):
            ledger.reject(d.reason)
            continue
        try:
            pixels = [prepare_image(im, vc, pc.image_size) for im in d.images if im is not None]
        except ImageError as e:
            ledger.reject(e.reason)
            continue
        items = d.texts  # None marks an image slot
        if not any(items) and not pixels:
            ledger.drop("pack", "empty")
            continue
        packer = packers["image" if pixels else "text"]
        packer.source = d.source or "unknown"
        pit = iter(pixels)
        for kind, ids in blocks(tok, items):
            if kind == "image":
                px, n_tok = next(pit)
                packer.add_image(n_tok, px)
                image_tokens.append(n_tok)
            else:
                packer.add_text(ids)
        ledger.kept += 1
    for p in packers.values():
        p.close()
    ledger.write(out_dir)
    writers = {s: p.w for s, p in packers.items()}
    total = sum(w.n_rows for w in writers.values()) * row_len
    stats = {
        "sequences": {s: w.n_rows for s, w in writers.items()},
        "shards": {s: w.n_shards for s, w in writers.items()},
        "tokens": total,
        "tokens_in": {s: p.tokens_in for s, p in packers.items()},
        "pad_fraction": (sum(w.n_pad for w in writers.values()) / total) if total else 0.0,
        "images": sum(w.n_images for w in writers.values()),
        "vocab_size": tok.get_vocab_size(),
        "seq_len": pc.seq_len,
        "image_size": pc.image_size,
        "tokens_per_image": k,
        "resolution": vc.resolution,
        # Per-image LM tokens actually packed (vary with dynamic resolution).
        "image_tokens": {
            "min": min(image_tokens, default=0),
            "max": max(image_tokens, default=0),
            "mean": sum(image_tokens) / len(image_tokens) if image_tokens else 0.0,
            "bound": k_max,
        },
        # Row source tags in packed shards (`sources` tensor) index this list.
        "sources": sorted(source_ids, key=source_ids.__getitem__),
    }
    # Written last: its presence marks the stage complete.
    (out_dir / STATS_FILE).write_text(json.dumps(stats, indent=2) + "\n")
    return stats
