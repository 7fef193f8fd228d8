"""SFT shards: conversations -> template -> tokens + loss mask, packed whole into rows.

Entry point (what the pipeline calls for a `kind: sft` stage):

    build_sft_data(cfg: ExperimentConfig, tokenizer: tokenizers.Tokenizer, layout: TokenLayout,
                   out_dir: str | Path, synth_dir: str | Path | None = None,
                   quiet: bool = True) -> dict   # the stats.json it wrote

`tokenizer` / `layout` are the packed data's (`packed/tokenizer.json`, stats.json
`token_layout`); `synth_dir` is the world (its manifest.json) when `cfg.sft.sources` has a
world source. The output directory (built staged, renamed into place when complete) holds
`sft-NNNNN.safetensors` in PackedShardWriter's format (`tokens` [R, L+1] int32,
`image_offsets`, `sources`, `images` or `patches` + `image_grids`) plus `loss_mask`
[R, L+1] uint8 and `segments` [R, L+1] int32, `tokenizer.json`, `ledger.json` (input =
kept + rejected by reason; one entry per conversation read) and `stats.json` (written last).

Loss: target j (token j+1) counts iff loss_mask[j+1] == 1: the assistant turns' tokens and
the token closing each (vloom template: `<eos>`). Images become `<image>` blocks exactly as
pack makes them (pack/images.py `prepare_image`: fixed square or dynamic resolution).

Packing policy: a conversation is never split across rows. Conversations are taken
`sft.pack_window` at a time and placed first-fit decreasing (longest first, into the first
row with room), so short ones fill the gaps long ones leave; the cost is padding, reported as
`pad_fraction` (FFD wastes little when conversations are short next to the row). A
conversation longer than a row keeps its whole turns up to the last answer that fits
(`truncated` in stats) or, with `sft.overlong: reject` or when not even its first answer
fits, is rejected as `too_long`. `segments` numbers the conversations of a row (0, 1, ...;
padding -1), so attention stays within a conversation (document masking).
"""

from __future__ import annotations

import itertools
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer
from tqdm import tqdm

from vloom.chat.conversation import ChatError, Conversation, text_turn
from vloom.chat.readers import chat_files, read_chat_file, read_document_conversations
from vloom.chat.template import HFTemplate, Rendered, VloomTemplate, make_template
from vloom.config import ExperimentConfig, SFTConfig
from vloom.doc import Rejected
from vloom.ledger import Ledger
from vloom.media import ImageError
from vloom.ondisk import STATS, TOKENIZER, atomic_write_json, staged_dir
from vloom.pack.images import max_image_tokens, prepare_image
from vloom.pack.packing import LOSS_MASK, SEGMENTS, PackedShardWriter
from vloom.sequence import TokenLayout, encode_text
from vloom.synth.instructions import world_instructions

STREAM = "sft"


@dataclass(slots=True)
class Encoded:
    """One conversation as token ids with its loss mask and its images' pixels."""

    ids: list[int]
    mask: list[int]
    pixels: list[np.ndarray]
    image_tokens: list[int]
    cuts: list[int]  # token counts just past each assistant turn (where it may be truncated)
    cut_images: list[int]  # images before each cut
    source: str

    def truncate(self, n: int) -> Encoded:
        """The conversation up to its last assistant turn that ends within n tokens."""
        k = max(i for i, c in enumerate(self.cuts) if c <= n)
        c, m = self.cuts[k], self.cut_images[k]
        return Encoded(
            self.ids[:c],
            self.mask[:c],
            self.pixels[:m],
            self.image_tokens[:m],
            self.cuts[: k + 1],
            self.cut_images[: k + 1],
            self.source,
        )


def encode(r: Rendered, tok: Tokenizer, layout: TokenLayout, image_fn, source: str = "") -> Encoded:
    """Rendered pieces -> ids, mask and pixels; `image_fn(bytes) -> (pixels, n_tokens)`."""
    ids: list[int] = []
    mask: list[int] = []
    pixels: list[np.ndarray] = []
    n_img: list[int] = []
    cuts, cut_images = [], []
    ends = set(r.turn_ends)
    for k, (piece, train) in enumerate(zip(r.pieces, r.train, strict=True)):
        if k in ends:
            cuts.append(len(ids))
            cut_images.append(len(pixels))
        if isinstance(piece, int):
            block = [piece]
        elif isinstance(piece, bytes):
            px, n = image_fn(piece)
            pixels.append(px)
            n_img.append(n)
            block = [layout.image] * n
        else:
            block = encode_text(tok, piece)
        ids += block
        mask += [int(train)] * len(block)
    if len(r.pieces) in ends:
        cuts.append(len(ids))
        cut_images.append(len(pixels))
    return Encoded(ids, mask, pixels, n_img, cuts, cut_images, source)


class _Row:
    __slots__ = ("convs", "used")

    def __init__(self) -> None:
        self.convs: list[Encoded] = []
        self.used = 0


class SFTPacker:
    """First-fit-decreasing packing of whole conversations into rows (see the module doc)."""

    def __init__(self, writer: PackedShardWriter, window: int) -> None:
        self.w, self.window = writer, window
        self.row_len = writer.row_len
        self.pending: list[Encoded] = []
        self.rows = 0
        self.tokens_in = 0
        self.assistant_tokens = 0
        self.conversations = 0
        self.image_tokens: list[int] = []

    def add(self, e: Encoded) -> None:
        assert len(e.ids) <= self.row_len, (len(e.ids), self.row_len)
        self.pending.append(e)
        if len(self.pending) >= self.window:
            self._pack()

    def _pack(self) -> None:
        rows: list[_Row] = []
        for e in sorted(self.pending, key=lambda e: -len(e.ids)):
            n = len(e.ids)
            row = next((r for r in rows if r.used + n <= self.row_len), None)
            if row is None:
                row = _Row()
                rows.append(row)
            row.convs.append(e)
            row.used += n
        for r in rows:
            self._write(r.convs)
        self.pending = []

    def _write(self, convs: list[Encoded]) -> None:
        lay = self.w.layout
        ids: list[int] = []
        mask: list[int] = []
        seg: list[int] = []
        pixels: list[np.ndarray] = []
        by_source: Counter = Counter()
        for k, e in enumerate(convs):
            ids += e.ids
            mask += e.mask
            seg += [k] * len(e.ids)
            pixels += e.pixels
            by_source[e.source] += len(e.ids)
            self.tokens_in += len(e.ids)
            self.assistant_tokens += sum(e.mask)
            self.image_tokens += e.image_tokens
        self.conversations += len(convs)
        pad = self.row_len - len(ids)
        self.w.add_row(
            ids + [lay.pad] * pad,
            pixels,
            by_source.most_common(1)[0][0],
            {LOSS_MASK: mask + [0] * pad, SEGMENTS: seg + [-1] * pad},
        )
        self.rows += 1

    def close(self) -> None:
        if self.pending:
            self._pack()
        self.w.flush()


def conversations(
    sc: SFTConfig, seed: int, synth_dir: str | Path | None
) -> Iterator[Conversation | Rejected]:
    """Every source's conversations, source after source in config order."""
    for src in sc.sources:
        if src.kind == "world":
            if synth_dir is None:
                raise ValueError(
                    f"sft.sources ({src.name}): kind world needs the world (synth_dir)"
                )
            yield from world_instructions(synth_dir, src.counts, seed, src.max_turns, src.name)
            continue
        if src.kind == "documents":
            rows = itertools.chain.from_iterable(
                read_document_conversations(p, src.name) for p in src.paths
            )
        else:
            rows = itertools.chain.from_iterable(
                read_chat_file(f, src.format, src.image_root, src.name)
                for f in chat_files(src.paths)
            )
        yield from itertools.islice(rows, src.limit)


def build_sft_data(
    cfg: ExperimentConfig,
    tokenizer: Tokenizer,
    layout: TokenLayout,
    out_dir: str | Path,
    synth_dir: str | Path | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Write the SFT shard directory for `cfg.sft` (see the module docstring); returns its
    stats. A bad conversation is a named rejection in the ledger (one stderr line unless
    quiet); config problems (an `hf` template the tokenizer lacks, a missing chat file) are
    one-line errors before anything is written."""
    sc = cfg.sft or SFTConfig()
    seq_len = sc.seq_len or cfg.pack.seq_len
    seed = cfg.seed if sc.seed is None else sc.seed
    vc = cfg.model.vision
    k_max = max_image_tokens(vc, cfg.pack.image_size)
    template = make_template(sc.template, layout, cfg.model.lm.tokenizer_dir)
    for src in sc.sources:  # missing files fail now, not halfway
        if src.kind == "chat":
            chat_files(src.paths)
        elif src.kind == "documents":
            missing = [p for p in src.paths if not Path(p).exists()]
            if missing:
                raise FileNotFoundError(f"sft.sources ({src.name}).paths: {missing[0]} not found")

    def image_fn(data: bytes) -> tuple[np.ndarray, int]:
        return prepare_image(data, vc, cfg.pack.image_size)

    ledger = Ledger()
    truncated = 0
    kinds: Counter = Counter()
    with staged_dir(out_dir, overwrite=True) as tmp:
        writer = PackedShardWriter(
            tmp,
            STREAM,
            seq_len + 1,
            cfg.pack.image_size,
            cfg.pack.shard_sequences,
            patch=(vc.patch_size, vc.merge) if vc.resolution == "dynamic" else None,
            layout=layout,
            extras={LOSS_MASK: np.uint8, SEGMENTS: np.int32},
        )
        packer = SFTPacker(writer, sc.pack_window)
        items = conversations(sc, seed, synth_dir)
        for c in tqdm(items, desc="sft", unit="conv", disable=quiet, mininterval=2):
            ledger.input += 1
            if isinstance(c, Rejected):
                _reject(ledger, c.reason, c.error, quiet)
                continue
            try:
                e = _encode(c, sc, template, tokenizer, layout, image_fn)
            except ChatError as err:
                _reject(ledger, err.reason, f"{c.id}: {err}", quiet)
                continue
            if len(e.ids) > seq_len + 1:
                fits = [x for x in e.cuts if x <= seq_len + 1]
                if sc.overlong == "reject" or not fits:
                    _reject(ledger, "too_long", f"{c.id}: {len(e.ids)} tokens > a row", quiet)
                    continue
                e = e.truncate(seq_len + 1)
                truncated += 1
            packer.add(e)
            ledger.kept += 1
            kinds[c.source] += 1
        packer.close()
        ledger.write(tmp)
        tokenizer.save(str(tmp / TOKENIZER))
        total = packer.rows * (seq_len + 1)
        names = writer.sources
        it = packer.image_tokens
        stats = {
            "seq_len": seq_len,
            "token_layout": layout.to_json(),
            "image_size": cfg.pack.image_size,
            "resolution": vc.resolution,
            "template": template.name,
            "rows": packer.rows,
            "shards": writer.n_shards,
            "conversations": packer.conversations,
            "conversations_by_source": dict(sorted(kinds.items())),
            "truncated": truncated,
            "rejected": ledger.n_rejected,
            "tokens": total,
            "tokens_in": packer.tokens_in,
            "assistant_tokens": packer.assistant_tokens,
            "pad_fraction": 1 - packer.tokens_in / total if total else 0.0,
            "images": writer.n_images,
            "image_tokens": {
                "min": min(it, default=0),
                "max": max(it, default=0),
                "mean": sum(it) / len(it) if it else 0.0,
                "bound": k_max,
            },
            "tokenizer_size": tokenizer.get_vocab_size(),
            "sources": sorted(names, key=names.__getitem__),  # `sources` tensor indexes this
            "seed": seed,
            "sft": sc.model_dump(mode="json"),  # what was built (a rerun can compare)
        }
        atomic_write_json(tmp / STATS, stats)  # written last: marks the directory complete
    return stats


def _encode(
    c: Conversation,
    sc: SFTConfig,
    template: VloomTemplate | HFTemplate,
    tok: Tokenizer,
    layout: TokenLayout,
    image_fn,
) -> Encoded:
    if sc.system and not any(t.role == "system" for t in c.turns):
        c = Conversation(c.id, [text_turn("system", sc.system), *c.turns], c.source, c.meta)
    try:
        return encode(template.render(c), tok, layout, image_fn, c.source)
    except ImageError as e:
        raise ChatError(e.reason, f"image: {e}") from None


def _reject(ledger: Ledger, reason: str, message: str, quiet: bool) -> None:
    ledger.reject(reason)
    if not quiet:
        print(f"[vloom] sft: skipped ({reason}): {message}", file=sys.stderr)
