"""Hugging Face `datasets` directories (save_to_disk or Parquet export) -> Documents.

Every row is one input unit. The layout is read from the columns (or forced with the option
`layout`), per table:
- "documents" (OBELICS / MINT-1T): `texts` list<string> and `images` list<image> aligned, one
  non-null per position. The row becomes the interleaved Document in that order. `url`,
  `language` fill the Document's fields (`url` also from `general_metadata.url`); every other
  column goes into metadata (`metadata` and `general_metadata` JSON strings parsed). An image
  that cannot be used (missing file, undecodable, over the cap, a URL without --fetch) is
  left out and tallied in the ledger's image counts with its reason, as the HTML source does
  for a dead <img>: one bad image does not cost the document. Row rejects: null_items,
  misaligned_items (lengths differ), both_at_position, neither_at_position, empty_document
  (no image and no non-blank text left).
- "conversation" (the_cauldron): `images` list<image> and `texts` list<{user, assistant,
  source}>. The Document holds the images first, then one text item per turn part in order:
  user, assistant, user, ... `metadata["conversation"]` is `[{"role": "user"|"assistant",
  "text": ...}, ...]`, aligned with the text items (item `n_images + k` is entry k), so an SFT
  stage can mask the user turns; `metadata["turn_sources"]` keeps each turn's `source`. Every
  image is needed: a bad one rejects the row with its reason (missing_image, image_too_large,
  undecodable_image, ...); also null_items, no_turns, incomplete_turn (a user or assistant
  text that is null or blank).
- "pairs": an image column (image, jpg, jpeg, png, webp, img) and a text column (caption, text,
  txt, alt_text) -> `[image, caption]`, rejects as in the pairs source (missing_image,
  missing_caption, empty_caption and the image reasons); other columns go into metadata.

Options (opts.extra): "layout" = documents | pairs | conversation; "image_column" and
"text_column" name the columns (for every layout). Images are struct {bytes, path}, bytes or a
path/URL string: a path must lie inside the table's directory ("unsafe_path" otherwise), a URL
is downloaded only with --fetch ("remote_not_fetched" otherwise), and every image passes
`vloom.media.check_image`. Lengths are checked in Arrow before rows become Python objects.

Ids are deterministic: `{input name}/{split}/{row}` (`{input name}/{row}` without a split;
a second input of the same name is `{name}~2`),
the row counted within the split across its files, so a save_to_disk directory and its
Parquet export give the same Documents. `metadata` also holds "layout", "split" and "row".
Reading is in small batches (hf_tables.py): memory stays bounded whatever the dataset's size.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from vloom.doc import Document
from vloom.ingest.base import IngestError, IngestOptions, UnitBoundary
from vloom.ingest.fetch import fetch_images
from vloom.ingest.hf_columns import (
    Oversize,
    Ref,
    image_lists,
    image_values,
    is_image_type,
    is_list,
    is_text,
)
from vloom.ingest.hf_tables import HFTable, TableCorrupt, TableReader, find_tables
from vloom.ingest.pairs import _jsonable, _resolve
from vloom.ingest.run import record_image
from vloom.ledger import Ledger
from vloom.media import ImageError, check_image

LAYOUTS = ("documents", "pairs", "conversation")
PAIR_IMAGE_NAMES = ("image", "jpg", "jpeg", "png", "webp", "img")
PAIR_TEXT_NAMES = ("caption", "text", "txt", "alt_text")
JSON_COLUMNS = ("metadata", "general_metadata")  # OBELICS stores these as JSON strings


@dataclass(frozen=True)
class Plan:
    """How one table's rows become Documents."""

    layout: str
    images: str  # the image column
    texts: str  # the text / caption / turns column


def input_names(inputs: list[Path]) -> list[str]:
    """Each input's name in ids: its stem or directory name, `~k` for the k-th of one name."""
    names: Counter[str] = Counter()
    out = []
    for inp in map(Path, inputs):
        name = inp.stem if inp.is_file() else inp.resolve().name
        names[name] += 1
        out.append(name if names[name] == 1 else f"{name}~{names[name]}")  # ids still differ
    return out


def ingest_hf(inputs: list[Path], ledger: Ledger, opts: IngestOptions) -> Iterator[Document]:
    """The `hf` source: `datasets` save_to_disk directories, Parquet exports, or their files.

    `opts.extra["_input_names"]` (the parallel runner, one input per part) keeps the names the
    whole run gives."""
    layout = opts.extra.get("layout")
    if layout is not None and layout not in LAYOUTS:
        raise IngestError(f"--option layout={layout!r}: expected one of {', '.join(LAYOUTS)}")
    given = opts.extra.get("_input_names") or input_names(inputs)
    for inp, name in zip(map(Path, inputs), given, strict=True):
        rows: Counter[str | None] = Counter()  # rows seen per split: the next row's number
        row = UnitBoundary(ledger, opts, "row")
        for table in find_tables(inp):
            yield from row.stream(
                str(table.path), _table_docs(table, name, rows, ledger, opts, row)
            )


def _table_docs(
    table: HFTable,
    name: str,
    rows: Counter,
    ledger: Ledger,
    opts: IngestOptions,
    boundary: UnitBoundary,
) -> Iterator[Document]:
    try:
        reader = TableReader(table, opts.max_image_bytes)
    except TableCorrupt as e:
        ledger.input += 1
        ledger.reject(e.reason)
        return
    plan = detect_layout(reader.schema, table.path, opts.extra)
    rows_fn = {"documents": _document, "conversation": _conversation, "pairs": _pair}[plan.layout]
    for batch in reader.batches(ledger):
        col = batch.column(plan.images)
        if plan.layout == "pairs":
            refs: list = [[r] for r in image_values(col, opts.max_image_bytes)]
        else:
            refs = image_lists(col, opts.max_image_bytes)
        others = batch.drop_columns([plan.images]).to_pylist()  # images stay in Arrow
        urls = [r for rs in refs if rs for r in rs if isinstance(r, str) and _is_remote(r)]
        images = _Images(table.path, ledger, opts, fetch_images(urls, opts) if urls else {})
        for row_refs, row in zip(refs, others, strict=True):
            ledger.input += 1
            index = rows[table.split]
            rows[table.split] += 1
            doc_id = f"{name}/{table.split}/{index}" if table.split else f"{name}/{index}"
            base = {"layout": plan.layout, "split": table.split, "row": index}
            label = f"{table.path} row {index}"
            doc = boundary.call(label, rows_fn, doc_id, row_refs, row, plan, images, base)
            if doc is None:
                continue  # the boundary counted it
            if isinstance(doc, str):
                ledger.reject(doc)
            else:
                yield doc


def detect_layout(schema: pa.Schema, path: Path, extra: dict) -> Plan:
    """The Plan for a table's columns; IngestError naming the file when none fits."""
    forced = extra.get("layout")
    names = {n.lower(): n for n in schema.names}
    types = {n: schema.field(n).type for n in schema.names}

    def col(option: str, default: tuple[str, ...]) -> str | None:
        wanted = extra.get(option)
        if wanted is not None:
            if str(wanted).lower() not in names:
                raise IngestError(
                    f"{path}: no column {wanted!r} ({option}); columns: {', '.join(schema.names)}"
                )
            return names[str(wanted).lower()]
        return next((names[w] for w in default if w in names), None)

    images, texts = col("image_column", ("images",)), col("text_column", ("texts",))
    if forced != "pairs" and images and texts and is_list(types[images]) and is_list(types[texts]):
        item = types[texts].value_type
        turns = pa.types.is_struct(item) and all(
            item.get_field_index(k) >= 0 for k in ("user", "assistant")
        )
        if is_image_type(types[images].value_type) and (turns or is_text(item)):
            layout = "conversation" if turns else "documents"
            if forced in (None, layout):
                return Plan(layout, images, texts)
    if forced in (None, "pairs"):
        images = col("image_column", PAIR_IMAGE_NAMES)
        texts = col("text_column", PAIR_TEXT_NAMES)
        if images and texts and is_image_type(types[images]) and is_text(types[texts]):
            return Plan("pairs", images, texts)
    found = ", ".join(f"{n}: {t}" for n, t in types.items()) or "none"
    want = {
        "documents": "texts list<string> + images list<image>",
        "conversation": "images list<image> + texts list<struct<user, assistant>>",
        "pairs": f"an image column ({'|'.join(PAIR_IMAGE_NAMES)}) + a text column "
        f"({'|'.join(PAIR_TEXT_NAMES)})",
    }
    looked = [want[forced]] if forced else list(want.values())
    raise IngestError(
        f"{path}: columns fit no layout (looked for {'; or '.join(looked)}); found {found} "
        "(set --option layout=/image_column=/text_column=)"
    )


def _is_remote(ref: str) -> bool:
    return urlsplit(ref).scheme.lower() in ("http", "https")


@dataclass
class _Images:
    """Turns one Ref into checked image bytes or a reason, tallying it in the ledger."""

    table: Path
    ledger: Ledger
    opts: IngestOptions
    fetched: dict[str, bytes | str]

    def get(self, ref: Ref) -> bytes | str:
        if ref is None:
            return "missing_image"
        if isinstance(ref, Oversize):
            got, origin = "image_too_large", "data"
        else:  # bytes, or a path/URL resolved as the pairs source does (inside the table's dir)
            got, origin = _resolve(ref, self.table, self.fetched, self.opts.max_image_bytes)
        if got is None:
            got = "missing_image"
        if isinstance(got, bytes):
            try:
                if len(got) > self.opts.max_image_bytes:
                    raise ImageError("image_too_large", "over the cap")
                check_image(got)
            except ImageError as e:
                got = e.reason
        record_image(self.ledger, origin, "attached" if isinstance(got, bytes) else got)
        return got


# ---------------------------------------------------------------- one row per layout


def _fields(row: dict[str, Any], skip: str, opts: IngestOptions) -> tuple[str, str, dict]:
    """(url, language, metadata) from a row's other columns."""
    meta: dict[str, Any] = {}
    for k, v in row.items():
        if k == skip or isinstance(v, bytes | bytearray):
            continue
        if k in JSON_COLUMNS and isinstance(v, str):
            try:
                v = json.loads(v)
            except ValueError:
                pass  # not JSON after all: kept as the string it is
        meta[k] = _jsonable(v)
    url = meta.pop("url", None)
    general = meta.get("general_metadata")
    if not isinstance(url, str) and isinstance(general, dict):
        url = general.get("url")
    lang = meta.pop("language", None)
    language = opts.language or (lang if isinstance(lang, str) else "")
    return (url if isinstance(url, str) else ""), language, meta


def _make(doc_id: str, items: list, row: dict, plan: Plan, images: _Images, base: dict) -> Document:
    url, language, meta = _fields(row, plan.texts, images.opts)
    meta.update(base)
    return Document.from_items(
        doc_id, items, source="hf", url=url, language=language, metadata=meta
    )


def _document(
    doc_id: str, refs: list[Ref] | None, row: dict, plan: Plan, images: _Images, base: dict
) -> Document | str:
    texts = row.get(plan.texts)
    if texts is None or refs is None:
        return "null_items"
    if len(texts) != len(refs):
        return "misaligned_items"
    for t, r in zip(texts, refs, strict=True):
        if t is not None and r is not None:
            return "both_at_position"
        if t is None and r is None:
            return "neither_at_position"
    items: list[str | bytes] = []
    for t, r in zip(texts, refs, strict=True):
        if t is not None:
            items.append(t)
            continue
        got = images.get(r)
        if isinstance(got, bytes):
            items.append(got)
        else:
            base["images_left_out"] = base.get("images_left_out", 0) + 1
    if not any(isinstance(it, bytes) or it.strip() for it in items):
        return "empty_document"
    return _make(doc_id, items, row, plan, images, base)


def _conversation(
    doc_id: str, refs: list[Ref] | None, row: dict, plan: Plan, images: _Images, base: dict
) -> Document | str:
    turns = row.get(plan.texts)
    if turns is None or refs is None:
        return "null_items"
    if not turns:
        return "no_turns"
    convo, sources = [], []
    for turn in turns:
        user = turn.get("user") if isinstance(turn, dict) else None
        assistant = turn.get("assistant") if isinstance(turn, dict) else None
        if not (isinstance(user, str) and user.strip()):
            return "incomplete_turn"
        if not (isinstance(assistant, str) and assistant.strip()):
            return "incomplete_turn"
        convo += [{"role": "user", "text": user}, {"role": "assistant", "text": assistant}]
        sources.append(turn.get("source"))
    got = [images.get(r) for r in refs]  # all resolved, so the tallies count every reference
    bad = next((g for g in got if isinstance(g, str)), None)
    if bad is not None:
        return bad
    base["conversation"] = convo
    if any(s is not None for s in sources):
        base["turn_sources"] = [_jsonable(s) for s in sources]
    return _make(doc_id, [*got, *(c["text"] for c in convo)], row, plan, images, base)


def _pair(
    doc_id: str, refs: list[Ref] | None, row: dict, plan: Plan, images: _Images, base: dict
) -> Document | str:
    ref = refs[0] if refs else None
    if ref is None:
        return "missing_image"
    caption = row.get(plan.texts)
    caption = caption.strip() if isinstance(caption, str) else None
    if not caption:
        return "missing_caption" if caption is None else "empty_caption"
    got = images.get(ref)
    if isinstance(got, str):
        return got
    return _make(doc_id, [got, caption], row, plan, images, base)
