"""`vloom pack`: documents -> tokenizer.json + packed safetensors shards + ledger + stats.

The tokenizer is trained on the corpus (vloom's byte-level BPE, special ids 0..3) or, with
`model.lm.init`, is the pretrained LM's own (see pack.hf_tokenizer); `stats.json` records its
special ids as `token_layout`, which training and evaluation read. Text items are tokenized
`ENCODE_DOCS` documents at a time with the fast tokenizer's batch encoding (Rust threads).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer
from tqdm import tqdm

from vloom.config import ExperimentConfig
from vloom.doc import Rejected, SchemaError, list_shards, read_shard
from vloom.ledger import Ledger
from vloom.media import ImageError
from vloom.ondisk import LEDGER, STATS, TOKENIZER, atomic_write_json, check_out_dir, staged_dir
from vloom.pack.captions import with_captions
from vloom.pack.hf_tokenizer import prepare_hf_tokenizer
from vloom.pack.images import max_image_tokens, prepare_image
from vloom.pack.packing import PackedShardWriter, Packer
from vloom.pack.tokenizer import train_tokenizer
from vloom.sequence import DEFAULT_LAYOUT, TokenLayout, item_texts, load_tokenizer

STATS_FILE = STATS  # vloom.pack's name for the completion marker (one spelling: ondisk.STATS)
STREAMS = ("text", "image")
ENCODE_DOCS = 256  # documents whose text items go to one encode_batch call
# What a pack writes; an existing output holding anything else is not replaced.
_OWN_FILES = re.compile(
    rf"({re.escape(STATS)}|{re.escape(TOKENIZER)}|{re.escape(LEDGER)}"
    rf"|({'|'.join(STREAMS)})-\d+\.safetensors)"
)


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
    """Pack every document of `in_dir`; a document with an undecodable image is rejected, not fatal.

    The output is built in a staging directory and renamed into place when complete, so a
    failed or killed pack leaves the previous output (if any) whole, and an output that is the
    input, lies inside it or holds it is refused before anything is written."""
    in_dir = Path(in_dir)
    if not in_dir.exists():
        raise FileNotFoundError(f"{in_dir}: input directory does not exist")
    _check_replaceable(check_out_dir(out_dir, [in_dir]), out_dir)
    k_max = _check_image_budget(cfg)
    with staged_dir(out_dir, overwrite=True, inputs=[in_dir]) as tmp:
        if cfg.model.lm.tokenizer_dir:
            tok, layout, vocab = prepare_hf_tokenizer(cfg.model.lm.tokenizer_dir, tmp / TOKENIZER)
        else:
            tok, layout = _train_tokenizer(in_dir, tmp / TOKENIZER, cfg), DEFAULT_LAYOUT
            vocab = tok.get_vocab_size()
        packers = _open_packers(tmp, cfg, layout)
        ledger, image_tokens = _pack_documents(in_dir, tok, layout, packers, cfg, quiet)
        for p in packers.values():
            p.close()
        ledger.write(tmp)
        stats = _stats(packers, vocab, layout, cfg, image_tokens, k_max)
        atomic_write_json(tmp / STATS, stats)  # written last: its presence marks the stage complete
    return stats


def _check_replaceable(out: Path, out_dir: str | Path) -> None:
    """Refuse to replace an existing directory that holds anything a pack did not write."""
    if not out.is_dir():
        return
    foreign = sorted(p.name for p in out.iterdir() if not _OWN_FILES.fullmatch(p.name))
    if foreign:
        raise FileExistsError(
            f"{out_dir}: holds {foreign[0]!r}, which is not pack output: refusing to replace it"
        )


def _check_image_budget(cfg: ExperimentConfig) -> int:
    """The most tokens one image can make; an error (before anything is written) when a row
    cannot hold that many."""
    pc, vc = cfg.pack, cfg.model.vision
    tokens_per_image(cfg)  # image_size must be a multiple of patch x merge
    k_max = max_image_tokens(vc, pc.image_size)
    if k_max > pc.seq_len:
        field = "model.vision.max_pixels" if vc.resolution == "dynamic" else "pack.image_size"
        raise ValueError(
            f"an image can make {k_max} tokens but rows hold pack.seq_len={pc.seq_len}: "
            f"lower {field} or raise pack.seq_len"
        )
    return k_max


def _train_tokenizer(in_dir: Path, path: Path, cfg: ExperimentConfig) -> Tokenizer:
    """Train BPE on the first `pack.tokenizer_docs` kept documents, save it, load it back."""

    def texts():
        led = Ledger()  # a throwaway: the packing pass below counts every document once
        for d in itertools.islice(_iter_docs(in_dir, led), cfg.pack.tokenizer_docs):
            if isinstance(d, Rejected):
                continue
            if cfg.pack.image_captions:  # the text pack will encode, captions included
                yield "\n\n".join(t for t in with_captions(d.texts, d.metadata) if t is not None)
            else:
                yield d.text

    train_tokenizer(texts(), cfg.pack.vocab_size, path)
    return load_tokenizer(path)


def _open_packers(out: Path, cfg: ExperimentConfig, layout: TokenLayout) -> dict[str, Packer]:
    """One packer per stream; the writers share one source name -> id map."""
    pc, vc = cfg.pack, cfg.model.vision
    dynamic = vc.resolution == "dynamic"
    source_ids: dict[str, int] = {}
    return {
        s: Packer(
            PackedShardWriter(
                out,
                s,
                pc.seq_len + 1,
                pc.image_size,
                pc.shard_sequences,
                source_ids,
                patch=(vc.patch_size, vc.merge) if dynamic else None,
                layout=layout,
                segments=pc.document_masking,
            )
        )
        for s in STREAMS
    }


def _pack_documents(
    in_dir: Path,
    tok: Tokenizer,
    layout: TokenLayout,
    packers: dict[str, Packer],
    cfg: ExperimentConfig,
    quiet: bool,
) -> tuple[Ledger, list[int]]:
    """Feed every document to its stream's packer; returns the ledger and the LM tokens of
    each packed image."""
    pc, vc = cfg.pack, cfg.model.vision
    image_tokens: list[int] = []
    ledger = Ledger()
    bar = tqdm(_iter_docs(in_dir, ledger), desc="pack", unit="doc", disable=quiet, mininterval=2)
    docs = iter(bar)  # one iterator: each islice continues where the last stopped
    while chunk := list(itertools.islice(docs, ENCODE_DOCS)):
        kept = []  # (document, its images' (pixels, tokens), its items' texts)
        for d in chunk:
            ledger.input += 1
            if isinstance(d, Rejected):
                ledger.reject(d.reason)
                continue
            try:
                pixels = [prepare_image(im, vc, pc.image_size) for im in d.images if im is not None]
            except ImageError as e:
                ledger.reject(e.reason)
                continue
            if not any(d.texts) and not pixels:  # d.texts: None marks an image slot
                ledger.drop("pack", "empty")
                continue
            items = with_captions(d.texts, d.metadata) if pc.image_captions else d.texts
            kept.append((d, pixels, item_texts(items)))
        texts = [t for _, _, ts in kept for t in ts if t is not None]
        # encode_batch_fast (tokenizers >= 0.21) skips the character offsets pack never reads
        encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
        encoded = iter(encode(texts, add_special_tokens=False))
        for d, pixels, ts in kept:
            packer = packers["image" if pixels else "text"]
            packer.source = d.source or "unknown"
            pit = iter(pixels)
            packer.add_text(layout.prefix)
            for t in ts:
                if t is None:
                    px, n_tok = next(pit)
                    packer.add_image(n_tok, px)
                    image_tokens.append(n_tok)
                else:
                    packer.add_text(next(encoded).ids)
            packer.add_text([layout.eos])
            ledger.kept += 1
    return ledger, image_tokens


def _stats(
    packers: dict[str, Packer],
    vocab: int,
    layout: TokenLayout,
    cfg: ExperimentConfig,
    image_tokens: list[int],
    k_max: int,
) -> dict[str, Any]:
    pc = cfg.pack
    writers = {s: p.w for s, p in packers.items()}
    total = sum(w.n_rows for w in writers.values()) * (pc.seq_len + 1)
    source_ids = writers[STREAMS[0]].sources
    return {
        "sequences": {s: w.n_rows for s, w in writers.items()},
        "shards": {s: w.n_shards for s, w in writers.items()},
        "tokens": total,
        "tokens_in": {s: p.tokens_in for s, p in packers.items()},
        "pad_fraction": (sum(w.n_pad for w in writers.values()) / total) if total else 0.0,
        "images": sum(w.n_images for w in writers.values()),
        "vocab_size": vocab,  # the model's: embedding rows (>= the tokenizer's size)
        "token_layout": layout.to_json(),  # special ids: sequence.TokenLayout
        "seq_len": pc.seq_len,
        "image_size": pc.image_size,
        "tokens_per_image": tokens_per_image(cfg),
        "resolution": cfg.model.vision.resolution,
        # Per-image LM tokens actually packed (vary with dynamic resolution).
        "image_tokens": {
            "min": min(image_tokens, default=0),
            "max": max(image_tokens, default=0),
            "mean": sum(image_tokens) / len(image_tokens) if image_tokens else 0.0,
            "bound": k_max,
        },
        # Row source tags in packed shards (`sources` tensor) index this list.
        "sources": sorted(source_ids, key=source_ids.__getitem__),
        "document_masking": pc.document_masking,  # rows carry `segments` (pack/packing.py)
    }
