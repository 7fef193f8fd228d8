"""Arrow image columns -> per-row image references, byte lengths checked before any copy.

An image value in a `datasets` table is one of: the Image feature's struct `{bytes, path}`
(bytes embedded, or only a path), raw `binary`, or a `string` (a path or an http(s) URL, as in
OBELICS). A column holds one such value per row (pairs) or a list of them (documents,
conversations). Lengths are compared with the cap in Arrow and oversized values are nulled
there, so a 2 GB blob never becomes a Python bytes object; the row sees OVERSIZE instead.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


class Oversize:
    """Stands for an image whose stored bytes exceed the cap (never materialised)."""

    def __repr__(self) -> str:
        return "OVERSIZE"


OVERSIZE = Oversize()
Ref = bytes | str | Oversize | None  # image bytes, a path/URL, too large, or no image


def is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def is_image_type(t: pa.DataType) -> bool:
    """Whether values of type `t` can hold an image (struct with bytes/path, binary, string)."""
    if pa.types.is_struct(t):
        return t.get_field_index("bytes") >= 0 or t.get_field_index("path") >= 0
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or is_text(t)


def image_values(arr: pa.Array, cap: int) -> list[Ref]:
    """One Ref per value of a non-list image column (see the module docstring)."""
    t, n = arr.type, len(arr)
    data = path = None
    if pa.types.is_struct(t):
        if t.get_field_index("bytes") >= 0:
            data = pc.struct_field(arr, "bytes")  # null where the struct itself is null
        if t.get_field_index("path") >= 0:
            path = pc.struct_field(arr, "path")
    elif is_text(t):
        path = arr
    else:
        data = arr
    over = [False] * n
    datas: list = [None] * n
    if data is not None:
        too_big = pc.fill_null(pc.greater(pc.binary_length(data), cap), False)
        over = too_big.to_pylist()
        datas = pc.if_else(too_big, pa.scalar(None, data.type), data).to_pylist()
    paths = path.to_pylist() if path is not None and is_text(path.type) else [None] * n
    out: list[Ref] = []
    for o, d, p in zip(over, datas, paths, strict=True):
        if o:
            out.append(OVERSIZE)
        elif d:  # embedded bytes win over the path (datasets keeps the source file's name)
            out.append(bytes(d))
        elif isinstance(p, str) and p.strip():
            out.append(p.strip())
        else:
            out.append(None)
    return out


def image_lists(arr: pa.Array, cap: int) -> list[list[Ref] | None]:
    """One list of Refs per row of a list-of-images column (None where the list is null)."""
    flat = image_values(arr.flatten(), cap)  # the values of the non-null lists, in order
    out: list[list[Ref] | None] = []
    pos = 0
    for n in arr.value_lengths().to_pylist():
        if n is None:
            out.append(None)
        else:
            out.append(flat[pos : pos + n])
            pos += n
    return out
