"""Image-text pair datasets -> one Document per pair, `[image, caption]`.

Two layouts, the ones people publish:
- webdataset tar shards (`.tar`, `.tar.gz`, `.tgz`): consecutive members sharing a key
  (`dir/key.jpg`, `dir/key.txt`, `dir/key.json`; the key runs to the first dot of the file
  name) form a sample. The caption is the `.txt` member, else the caption field of the `.json`
  member, whose other fields go into metadata. Members are streamed (`tarfile` "r|*"), never
  extracted: nothing is written anywhere, and a member whose name is absolute or climbs with
  `..`, or that is a link or device, makes its sample "unsafe_path".
- Parquet, img2dataset / Hugging Face style: a caption column and an image column holding the
  bytes (or a `{"bytes", "path"}` struct), a path resolved relative to the Parquet file (it must
  lie inside that directory once `..` and links are resolved: "unsafe_path" otherwise), or an http(s) URL (downloaded only
  with `opts.fetch`, see fetch.py). Other columns go into metadata. A directory walk skips a
  Parquet file that has a `.tar` of the same name beside it (img2dataset's per-shard metadata).

Column and field names (opts.extra, case-insensitive): "caption_column" (default: caption,
text, txt), "image_column" (default: the first present of image, jpg, jpeg, png, webp, bytes,
img, image_path, path, file, url, image_url).

Hostile inputs, and what they cost:
- only regular files are read (a FIFO or device named as a shard or an image path cannot hang
  the run: "not_a_regular_file");
- a tar's extended headers (PAX, GNU long names) are capped and checked before tarfile parses
  them (tar_guard.py): an oversized or malformed one ends that shard as "tar_unsafe_header";
- Parquet is read one row group at a time, in batches sized from the row group's byte size;
  the page headers are read first (parquet_pages.py) and a row group holding a page that
  inflates past the image cap and over `MAX_PAGE_RATIO` times its compressed size is refused
  unread, each of its rows counted "compression_bomb"; in the rest, image byte lengths are
  checked in Arrow, before rows become Python objects ("image_too_large").

Every image passes `vloom.media.check_image`; rejects are named: not_an_image,
undecodable_image, decompression_bomb, image_too_large, missing_image, missing_caption,
empty_caption, caption_not_utf8, bad_json, unsafe_path, image_not_found, not_a_regular_file,
image_unreadable, tar_corrupt, tar_unsafe_header, parquet_corrupt, compression_bomb,
remote_not_fetched (a URL without --fetch), and fetch failures as fetch_<reason>
(fetch_timeout, fetch_http_404, fetch_blocked_address, ...).
"""

from __future__ import annotations

import json
import lzma
import re
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vloom.doc import Document
from vloom.ingest.base import (
    IngestError,
    IngestOptions,
    UnitBoundary,
    open_regular_file,
    read_regular_file,
)
from vloom.ingest.fetch import fetch_images
from vloom.ingest.parquet_pages import PageHeaderError, page_sizes
from vloom.ingest.run import record_image
from vloom.ingest.tar_guard import GuardedTarInfo, UnsafeTarHeader
from vloom.ledger import Ledger
from vloom.media import ImageError, check_image

CAPTION_NAMES = ("caption", "text", "txt")
IMAGE_COLUMNS = ("image", "jpg", "jpeg", "png", "webp", "bytes", "img")
PATH_COLUMNS = ("image_path", "path", "file")
URL_COLUMNS = ("url", "image_url")
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff")
CAPTION_EXTS = ("txt", "caption", "text")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
BATCH_ROWS = 64  # Parquet rows per batch at most...
BATCH_BYTES = 64 << 20  # ...and about this many decoded bytes (from the row group's size)
PAGE_SLACK = 8 << 20  # a page may exceed the image cap by this much (other values share it)
MAX_PAGE_RATIO = 64  # image bytes hardly compress: a page inflating more than this is a bomb
_KEY_RE = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")  # webdataset: dir/key.ext, ext after 1st dot
_FIELDS = frozenset((*IMAGE_EXTS, *CAPTION_EXTS, "json"))  # members read; others are skipped
_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)


def ingest_pairs(inputs: list[Path], ledger: Ledger, opts: IngestOptions) -> Iterator[Document]:
    """The `pairs` source: webdataset tars and Parquet tables (directories are walked)."""
    caption_names = _names(opts.extra.get("caption_column"), CAPTION_NAMES)
    image_names = _names(opts.extra.get("image_column"), IMAGE_COLUMNS + PATH_COLUMNS + URL_COLUMNS)
    pair = UnitBoundary(ledger, opts, "pair")
    for path in _walk(inputs):
        if path.name.lower().endswith(TAR_SUFFIXES):
            units = _tar_pairs(path, ledger, opts, caption_names, pair)
        else:
            units = _parquet_pairs(path, ledger, opts, caption_names, image_names, pair)
        yield from pair.stream(str(path), units)


def _names(value: str | list[str] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    return (value,) if isinstance(value, str) else tuple(value)


def _kind(p: Path) -> str | None:
    name = p.name.lower()
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    return "parquet" if name.endswith(".parquet") else None


def _walk(inputs: list[Path]) -> Iterator[Path]:
    for p in map(Path, inputs):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and _kind(f))
            tars = {f.with_name(f.name.split(".")[0]) for f in found if _kind(f) == "tar"}
            for f in found:
                if _kind(f) == "parquet" and f.with_name(f.name.split(".")[0]) in tars:
                    continue  # img2dataset writes NNNNN.parquet (metadata only) beside NNNNN.tar
                yield f
        elif p.exists() and not p.is_file():
            raise IngestError(f"{p}: not a regular file or directory")
        elif p.is_file():
            if _kind(p) is None:
                raise IngestError(
                    f"{p}: not a webdataset tar ({', '.join(TAR_SUFFIXES)}) or a .parquet file"
                )
            yield p
        else:
            raise IngestError(f"{p}: no such file or directory")


# ---------------------------------------------------------------- one pair, whatever the layout


def _pair_doc(
    ledger: Ledger,
    opts: IngestOptions,
    doc_id: str,
    image: bytes | None,
    caption: str | None,
    meta: dict[str, Any],
    origin: str,
) -> Document | None:
    """Check a pair; count the reject and return None, or return the Document."""
    if image is None:
        ledger.reject("missing_image")
        return None
    caption = caption.strip() if caption is not None else None
    if not caption:
        ledger.reject("missing_caption" if caption is None else "empty_caption")
        return None
    if len(image) > opts.max_image_bytes:
        record_image(ledger, origin, "image_too_large")
        ledger.reject("image_too_large")
        return None
    try:
        fmt, w, h = check_image(image)
    except ImageError as e:
        record_image(ledger, origin, e.reason)
        ledger.reject(e.reason)
        return None
    record_image(ledger, origin, "attached")
    meta.update(image_format=fmt, width=w, height=h)
    url = meta.get("url")
    lang = meta.get("language")
    return Document.from_items(
        doc_id,
        [image, caption],
        source="pairs",
        url=url if isinstance(url, str) else "",
        language=opts.language or (lang if isinstance(lang, str) else ""),
        metadata=meta,
    )


def _jsonable(v: Any) -> Any:
    """A metadata value JSON can hold: bytes are dropped (None), odd types become strings."""
    if isinstance(v, bytes | bytearray):
        return None
    try:
        json.dumps(v)
        return v
    except (TypeError, ValueError):
        return str(v)


# ---------------------------------------------------------------- webdataset tar shards


@dataclass
class _Sample:
    key: str
    fields: dict[str, bytes] = field(default_factory=dict)
    problem: str | None = None  # a reject reason found while streaming (unsafe_path, too large)


def _tar_pairs(
    path: Path,
    ledger: Ledger,
    opts: IngestOptions,
    caption_names: tuple[str, ...],
    pair: UnitBoundary,
) -> Iterator[Document]:
    sample: _Sample | None = None
    try:
        f = open_regular_file(path)
    except OSError:
        ledger.input += 1
        ledger.reject("not_a_regular_file")
        return
    try:
        with f, tarfile.open(fileobj=f, mode="r|*", tarinfo=GuardedTarInfo) as tf:
            for m in tf:
                if m.isdir():
                    continue
                match = _KEY_RE.match(m.name)
                key, ext = (match.group(1), match.group(2).lower()) if match else (m.name, "")
                if sample is None or key != sample.key:
                    if sample is not None:
                        doc = pair.call(
                            f"{path}:{sample.key}",
                            _tar_sample,
                            *(path, sample, ledger, opts, caption_names),
                        )
                        if doc is not None:
                            yield doc
                    sample = _Sample(key)
                    ledger.input += 1
                if _unsafe_member(m):
                    sample.problem = "unsafe_path"
                elif m.size > opts.max_image_bytes:
                    sample.problem = sample.problem or (
                        "image_too_large" if ext in IMAGE_EXTS else "member_too_large"
                    )
                elif sample.problem is None and ext in _FIELDS and ext not in sample.fields:
                    f = tf.extractfile(m)
                    sample.fields[ext] = f.read() if f is not None else b""
            if not _ended_cleanly(tf):
                raise tarfile.ReadError("no end-of-archive block: truncated between members")
    except (*_TAR_ERRORS, UnsafeTarHeader) as e:
        # The sample being read when the stream broke cannot be trusted; the ones before were
        # complete and are kept. If it broke before any sample began, the shard counts as one.
        if sample is None:
            ledger.input += 1
        ledger.reject("tar_unsafe_header" if isinstance(e, UnsafeTarHeader) else "tar_corrupt")
        return
    if sample is not None:
        label = f"{path}:{sample.key}"
        doc = pair.call(label, _tar_sample, path, sample, ledger, opts, caption_names)
        if doc is not None:
            yield doc


def _ended_cleanly(tf: tarfile.TarFile) -> bool:
    """Whether iteration stopped at the end-of-archive (zero) block rather than at a bare EOF.

    tarfile ends quietly in both cases; a shard cut exactly between two members would otherwise
    pass for a complete one. `offset` is where tarfile read the last header, so a full block
    read past it means the zero block was there.
    """
    try:
        return tf.fileobj.tell() - tf.offset == tarfile.BLOCKSIZE  # type: ignore[union-attr]
    except (AttributeError, OSError):
        return True  # cannot tell: do not call a shard corrupt on a guess


def _unsafe_member(m: tarfile.TarInfo) -> bool:
    """Absolute, climbing (`..`), a Windows drive path, or not a regular file (links, devices)."""
    name = PurePosixPath(m.name.replace("\\", "/"))
    drive = re.match(r"^[A-Za-z]:", m.name) is not None
    return name.is_absolute() or ".." in name.parts or drive or not m.isfile()


def _tar_sample(
    path: Path,
    s: _Sample,
    ledger: Ledger,
    opts: IngestOptions,
    caption_names: tuple[str, ...],
) -> Document | None:
    if s.problem:
        ledger.reject(s.problem)
        return None
    image = next((s.fields[e] for e in IMAGE_EXTS if e in s.fields), None)
    meta: dict[str, Any] = {}
    caption: str | None = None
    try:
        if "json" in s.fields:
            obj = json.loads(s.fields["json"])
            if not isinstance(obj, dict):
                raise ValueError("not an object")
            lower = {k.lower(): k for k in obj}
            cap_key = next((lower[n.lower()] for n in caption_names if n.lower() in lower), None)
            if cap_key is not None and isinstance(obj[cap_key], str):
                caption = obj[cap_key]
            meta.update({k: _jsonable(v) for k, v in obj.items() if k != cap_key})
        for e in CAPTION_EXTS:
            if e in s.fields:
                caption = s.fields[e].decode("utf-8")
                break
    except UnicodeDecodeError:
        ledger.reject("caption_not_utf8")
        return None
    except ValueError:  # json.JSONDecodeError, a non-object
        ledger.reject("bad_json")
        return None
    meta.update(key=s.key, shard=path.name)
    return _pair_doc(ledger, opts, f"{path.name}:{s.key}", image, caption, meta, "tar")


# ---------------------------------------------------------------- Parquet tables


def _pick(names: list[str], wanted: tuple[str, ...]) -> list[str]:
    """The columns of `names` matching `wanted` (case-insensitive), in `wanted`'s order."""
    lower = {n.lower(): n for n in names}
    return [lower[w.lower()] for w in wanted if w.lower() in lower]


def _parquet_pairs(
    path: Path,
    ledger: Ledger,
    opts: IngestOptions,
    caption_names: tuple[str, ...],
    image_names: tuple[str, ...],
    pair: UnitBoundary,
) -> Iterator[Document]:
    try:
        f = open_regular_file(path)
    except OSError:
        ledger.input += 1
        ledger.reject("not_a_regular_file")
        return
    with f:
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowException, OSError):
            ledger.input += 1
            ledger.reject("parquet_corrupt")
            return
        names = pf.schema_arrow.names
        captions, images = _pick(names, caption_names), _pick(names, image_names)
        if not captions or not images:
            what = "caption" if not captions else "image"
            looked = caption_names if not captions else image_names
            raise IngestError(
                f"{path}: no {what} column (looked for {', '.join(looked)}); "
                f"columns found: {', '.join(names) or 'none'} (set the column name in the options)"
            )
        table = _Table(path, pf, captions[0], images, opts, pair)
        for group in range(pf.metadata.num_row_groups):
            yield from table.row_group(group, ledger)


@dataclass
class _Table:
    path: Path
    pf: pq.ParquetFile
    cap_col: str
    images: list[str]
    opts: IngestOptions
    pair: UnitBoundary
    index: int = 0  # rows seen so far: a row's key when it has none

    def row_group(self, group: int, ledger: Ledger) -> Iterator[Document]:
        meta = self.pf.metadata.row_group(group)
        n_rows = meta.num_rows
        bomb = self._bomb(group)
        if bomb:
            ledger.input += n_rows
            ledger.reject(bomb, n_rows)
            self.index += n_rows
            return
        per_row = max(1, meta.total_byte_size // max(1, n_rows))
        batch_rows = max(1, min(BATCH_ROWS, BATCH_BYTES // per_row))
        done = 0
        try:
            for batch in self.pf.iter_batches(batch_size=batch_rows, row_groups=[group]):
                done += batch.num_rows
                yield from self._batch(batch, ledger)
        except (pa.ArrowException, OSError):
            rest = max(1, n_rows - done)  # the rows this row group still held count as lost
            ledger.input += rest
            ledger.reject("parquet_corrupt", rest)
            self.index += rest

    def _bomb(self, group: int) -> str | None:
        """ "compression_bomb" when a page of this row group inflates past both limits, or
        "parquet_corrupt" when its page headers cannot be read; None when it is safe to decode."""
        meta = self.pf.metadata.row_group(group)
        limit = self.opts.max_image_bytes + PAGE_SLACK
        try:
            with open_regular_file(self.path) as f:
                for c in range(meta.num_columns):
                    chunk = meta.column(c)
                    start = chunk.data_page_offset
                    if chunk.has_dictionary_page and chunk.dictionary_page_offset:
                        start = min(start, chunk.dictionary_page_offset)
                    for raw, packed in page_sizes(f, start, chunk.total_compressed_size):
                        if raw > limit and raw > MAX_PAGE_RATIO * max(1, packed):
                            return "compression_bomb"
        except (PageHeaderError, OSError):
            return "parquet_corrupt"
        return None

    def _over_cap(self, batch: pa.RecordBatch) -> list[bool]:
        """Per row: does an image column hold more bytes than the cap (checked in Arrow)?"""
        over = pa.array([False] * batch.num_rows)
        for name in self.images:
            col = batch.column(name)
            if pa.types.is_struct(col.type) and col.type.get_field_index("bytes") >= 0:
                col = pc.struct_field(col, "bytes")
            if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
                too_big = pc.greater(pc.binary_length(col), self.opts.max_image_bytes)
                over = pc.or_(over, pc.fill_null(too_big, False))
        return over.to_pylist()

    def _batch(self, batch: pa.RecordBatch, ledger: Ledger) -> Iterator[Document]:
        path, opts = self.path, self.opts
        over = self._over_cap(batch)
        # only rows within the cap become Python objects
        rows = iter(batch.filter(pa.array([not o for o in over])).to_pylist())
        kept = [next(rows) if not o else None for o in over]
        refs = [_image_ref(row, self.images) if row is not None else None for row in kept]
        urls = [r for r in refs if isinstance(r, str) and _is_remote(r)]
        fetched = fetch_images(urls, opts) if urls else {}
        for row, ref in zip(kept, refs, strict=True):
            ledger.input += 1
            self.index += 1
            if row is None:
                record_image(ledger, "data", "image_too_large")
                ledger.reject("image_too_large")
                continue
            label = f"{path} row {self.index - 1}"
            doc = self.pair.call(label, self._row, row, ref, fetched, ledger)
            if doc is not None:
                yield doc

    def _row(
        self, row: dict[str, Any], ref: bytes | str | None, fetched: dict, ledger: Ledger
    ) -> Document | None:
        """One row within the cap -> its Document, or None after counting the reject."""
        path, cap_col, opts = self.path, self.cap_col, self.opts
        raw_key = row.get("key")
        key = str(raw_key) if isinstance(raw_key, str | int) else f"{self.index - 1:09d}"
        image, origin = _resolve(ref, path, fetched, opts.max_image_bytes)
        if isinstance(image, str):
            record_image(ledger, origin, image)
            ledger.reject(image)
            return None
        caption = row.get(cap_col)
        meta = {
            k: _jsonable(v)
            for k, v in row.items()
            if k != cap_col and not isinstance(v, bytes | bytearray | dict)
        }
        meta.update(key=key, shard=path.name)
        return _pair_doc(
            ledger,
            opts,
            f"{path.name}:{key}",
            image,
            caption if isinstance(caption, str) else None,
            meta,
            origin,
        )


def _image_ref(row: dict[str, Any], columns: list[str]) -> bytes | str | None:
    """The first non-null image value: bytes, or a path/URL string (HF structs unwrapped)."""
    for c in columns:
        v = row.get(c)
        if isinstance(v, dict):  # Hugging Face Image feature: {"bytes": ..., "path": ...}
            v = v.get("bytes") or v.get("path")
        if isinstance(v, bytes | bytearray) and v:
            return bytes(v)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return None


def _is_remote(ref: str) -> bool:
    return urlsplit(ref).scheme.lower() in ("http", "https")


# fetch reasons as pair rejects; "remote_not_fetched" is the html source's name for the same case
_FETCH_AS = {
    "too_large": "image_too_large",
    "not_an_image": "not_an_image",
    "fetch_disabled": "remote_not_fetched",
}


def _resolve(
    ref: bytes | str | None, table: Path, fetched: dict[str, bytes | str], max_bytes: int
) -> tuple[bytes | str | None, str]:
    """(image bytes | None when no image is given | a reject reason, the reference's origin)."""
    if ref is None or isinstance(ref, bytes):
        return ref, "data"
    if _is_remote(ref):
        got = fetched.get(ref, "fetch_disabled")
        if isinstance(got, str):
            got = _FETCH_AS.get(got, f"fetch_{got}")
        return got, "remote"
    parts = urlsplit(ref)
    if parts.scheme == "file":
        ref = unquote(parts.path)
    elif len(parts.scheme) > 1:  # s3://, data: ... are not ours (one letter is a Windows drive)
        return "unsupported_image_ref", "local"
    if re.match(r"^[A-Za-z]:", ref):
        return "unsafe_path", "local"
    base = table.parent.resolve()
    # absolute or relative, after `..` and symlinks it must lie inside the table's directory
    target = (base / ref.replace("\\", "/")).resolve()
    if not target.is_relative_to(base):
        return "unsafe_path", "local"
    try:  # a FIFO or device must not block the run: regular files only
        return read_regular_file(target, max_bytes), "local"
    except ValueError:
        return "image_too_large", "local"
    except (FileNotFoundError, NotADirectoryError):
        return "image_not_found", "local"
    except PermissionError:
        return "image_unreadable", "local"
    except OSError:
        return "not_a_regular_file", "local"
