"""The Document and its on-disk format: OBELICS / MINT-1T schema Parquet shards.

A Document is an interleaved sequence of items; position i holds either a text
(`texts[i]`) or an image (`images[i]`, encoded bytes), never both and never
neither. Shards are Parquet files with the columns of `SCHEMA`; `metadata` is a
JSON string so any tool can read it without knowing vloom.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("texts", pa.list_(pa.string())),
        ("images", pa.list_(pa.binary())),
        ("source", pa.string()),
        ("url", pa.string()),
        ("language", pa.string()),
        ("metadata", pa.string()),
    ]
)
REQUIRED_COLUMNS = ("texts", "images")
SHARD_GLOB = "*.parquet"


class SchemaError(ValueError):
    """A shard or a row that breaks the OBELICS schema. The message names the file."""


@dataclass(slots=True)
class Document:
    id: str
    texts: list[str | None]
    images: list[bytes | None]
    source: str = ""
    url: str = ""
    language: str = "en"
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_items(cls, id: str, items: Iterable[str | bytes], **kw: Any) -> Document:
        """Build from an interleaved list: `str` items are texts, `bytes` items images."""
        texts: list[str | None] = []
        images: list[bytes | None] = []
        for it in items:
            if isinstance(it, bytes | bytearray):
                texts.append(None)
                images.append(bytes(it))
            else:
                texts.append(str(it))
                images.append(None)
        return cls(id=id, texts=texts, images=images, **kw)

    def items(self) -> Iterator[tuple[str, str | bytes]]:
        """Yield ("text", str) or ("image", bytes) in reading order."""
        for t, im in zip(self.texts, self.images, strict=True):
            yield ("text", t) if t is not None else ("image", im)  # type: ignore[misc]

    @property
    def text(self) -> str:
        """All text items joined by blank lines (what text filters look at)."""
        return "\n\n".join(t for t in self.texts if t is not None)

    @property
    def n_images(self) -> int:
        return sum(im is not None for im in self.images)

    def validate(self) -> None:
        """Raise SchemaError unless texts/images align with exactly one non-null per slot."""
        if len(self.texts) != len(self.images):
            raise SchemaError(
                f"document {self.id!r}: texts has {len(self.texts)} items, images {len(self.images)}"
            )
        for i, (t, im) in enumerate(zip(self.texts, self.images, strict=True)):
            if (t is None) == (im is None):
                what = "both" if t is not None else "neither"
                raise SchemaError(f"document {self.id!r}: position {i} holds {what} text and image")

    def to_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "texts": self.texts,
            "images": self.images,
            "source": self.source,
            "url": self.url,
            "language": self.language,
            "metadata": json.dumps(self.metadata, sort_keys=True),
        }


@dataclass(slots=True)
class Rejected:
    """A row that could not be read as a Document; `reason` is a short slug, `error` the detail."""

    id: str
    reason: str
    error: str


def write_shard(path: str | os.PathLike, docs: Iterable[Document]) -> int:
    """Write documents to one Parquet shard atomically (tmp file, then rename). Returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for d in docs:
        d.validate()
        rows.append(d.to_row())
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)
    return len(rows)


def _check_schema(path: Path, schema: pa.Schema) -> None:
    names = set(schema.names)
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise SchemaError(f"{path}: not an OBELICS shard, missing column(s) {', '.join(missing)}")
    for col in REQUIRED_COLUMNS:
        want = SCHEMA.field(col).type
        got = schema.field(col).type
        ok = pa.types.is_list(got) or pa.types.is_large_list(got)
        inner = got.value_type if ok else None
        if col == "texts":
            ok = ok and (pa.types.is_string(inner) or pa.types.is_large_string(inner))
        else:
            ok = ok and (pa.types.is_binary(inner) or pa.types.is_large_binary(inner))
        if not ok:
            raise SchemaError(f"{path}: column {col!r} has type {got}, expected {want}")


def _row_to_doc(row: dict[str, Any], path: Path, index: int) -> Document | Rejected:
    rid = row.get("id") or f"{path.stem}:{index}"
    texts, images = row.get("texts"), row.get("images")
    if texts is None or images is None:
        return Rejected(rid, "null_items", f"{path}: row {index}: texts or images is null")
    meta_raw = row.get("metadata")
    try:
        meta = json.loads(meta_raw) if meta_raw else {}
        if not isinstance(meta, dict):
            raise ValueError("metadata is not a JSON object")
    except ValueError as e:
        return Rejected(rid, "bad_metadata", f"{path}: row {index}: {e}")
    doc = Document(
        id=str(rid),
        texts=list(texts),
        images=list(images),
        source=row.get("source") or "",
        url=row.get("url") or "",
        language=row.get("language") or "",
        metadata=meta,
    )
    try:
        doc.validate()
    except SchemaError as e:
        return Rejected(doc.id, "misaligned_items", f"{path}: row {index}: {e}")
    return doc


def read_shard(path: str | os.PathLike, batch_size: int = 256) -> Iterator[Document | Rejected]:
    """Stream a shard. A wrong schema raises SchemaError naming the file; a bad row yields Rejected."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such shard")
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise SchemaError(f"{path}: not a readable Parquet file ({e})") from None
    _check_schema(path, pf.schema_arrow)
    index = 0
    for batch in pf.iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            yield _row_to_doc(row, path, index)
            index += 1


def read_documents(path: str | os.PathLike) -> Iterator[Document]:
    """Documents from a shard or a directory of shards, raising on the first malformed row."""
    for p in list_shards(path):
        for d in read_shard(p):
            if isinstance(d, Rejected):
                raise SchemaError(d.error)
            yield d


def list_shards(path: str | os.PathLike) -> list[Path]:
    """A shard file itself, or the sorted shards in a directory. Clear errors when absent."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    shards = sorted(path.glob(SHARD_GLOB))
    if not shards:
        raise FileNotFoundError(f"{path}: no Parquet shards ({SHARD_GLOB}) in this directory")
    return shards


def doc_bytes(doc: Document) -> int:
    """Approximate in-memory size: image bytes plus text characters (for shard size caps)."""
    return sum(len(im) for im in doc.images if im is not None) + sum(
        len(t) for t in doc.texts if t is not None
    )


def write_documents(
    out_dir: str | os.PathLike,
    docs: Iterable[Document],
    shard_size: int = 1000,
    prefix: str = "shard",
    shard_bytes: int | None = None,
) -> list[Path]:
    """Write documents as they come into numbered shards of at most `shard_size` documents
    (and about `shard_bytes`, when given); memory is bounded by one shard. An empty stream
    still writes one empty shard, so readers find a valid dataset."""
    out_dir = Path(out_dir)
    paths: list[Path] = []
    buf: list[Document] = []
    size = 0

    def flush() -> None:
        p = out_dir / f"{prefix}-{len(paths):05d}.parquet"
        write_shard(p, buf)
        paths.append(p)
        buf.clear()

    for d in docs:
        buf.append(d)
        if shard_bytes is not None:
            size += doc_bytes(d)
        if len(buf) >= shard_size or (shard_bytes is not None and size >= shard_bytes):
            flush()
            size = 0
    if buf or not paths:
        flush()
    return paths
