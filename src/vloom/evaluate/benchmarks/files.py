"""Benchmark files as plain rows, and image cells as bytes.

A file is Parquet, JSON Lines or TSV (VLMEvalKit's layout). An image cell may be raw bytes,
a `{"bytes": ..., "path": ...}` struct (Hugging Face datasets' Image feature), a list of
those, base64 text (the TSV convention), a JSON list of base64 strings (VLMEvalKit's
multi-image rows), or a path (absolute or relative to the file). A problem with one cell is
a `Malformed` with a short reason, so the caller can count the row and go on.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

# A cell that ends like an image file name is a path, never base64 (so a missing file is
# reported as missing, not as bad base64).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")


class Malformed(ValueError):
    """One row that cannot be scored; `reason` is the slug it is counted under."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def read_rows(path: Path) -> list[dict[str, Any]]:
    """All rows of a .parquet, .jsonl/.json or .tsv file, as dicts."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if suffix in (".jsonl", ".json"):
        rows = []
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{path}: line {n} is not JSON: {e.msg}") from None
        return rows
    if suffix == ".tsv":
        csv.field_size_limit(sys.maxsize)  # base64 images are long fields
        with path.open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f, delimiter="\t"))
    raise ValueError(f"{path}: unsupported file type {suffix!r} (use .parquet, .jsonl or .tsv)")


def is_blank(value: Any) -> bool:
    """None, NaN, or text with nothing in it (how the formats spell an absent cell)."""
    if value is None:
        return True
    if isinstance(value, float):
        return value != value
    return isinstance(value, str) and not value.strip()


def image_list(value: Any, base: Path) -> list[bytes]:
    """Every image in one cell, in order ([] for an empty cell)."""
    if is_blank(value):
        return []
    if isinstance(value, (list, tuple)):
        return [b for v in value for b in image_list(v, base)]
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            items = json.loads(value)
        except json.JSONDecodeError:
            raise Malformed(
                "bad_image", f"image cell {value[:40]!r}... is not a JSON list"
            ) from None
        return image_list(items, base)
    return [one_image(value, base)]


def one_image(value: Any, base: Path) -> bytes:
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        if not value.get("path"):
            raise Malformed("missing_image", "image struct has neither bytes nor path")
        value = value["path"]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if not isinstance(value, str):
        raise Malformed("bad_image", f"image has unsupported type {type(value).__name__}")
    text = value.strip()
    p = existing_file(text, base)
    if p is not None:
        return p.read_bytes()
    if text.lower().endswith(IMAGE_SUFFIXES):
        raise Malformed("missing_image", f"image file {text!r} not found")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Malformed("bad_image", f"image {text[:40]!r} is neither a file nor base64") from None


def existing_file(text: str, base: Path) -> Path | None:
    """The file a cell names (absolute, or relative to `base`), or None. Base64 text is
    never mistaken for one, even where it would be a name too long for the OS to stat."""
    if not text or len(text) >= 1024:
        return None
    p = Path(text) if Path(text).is_absolute() else base / text
    try:
        return p if p.is_file() else None
    except OSError:  # ENAMETOOLONG and the like: not a file name
        return None
