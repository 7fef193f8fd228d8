"""The decoded size of a Parquet column chunk's largest page, read from the page headers alone.

Arrow decompresses a whole page before it can hand over one value, and a page holds at least
one value whole: a few KB of zstd can hold a 64 MB run of zeros, and reading that row costs
the 64 MB (several times over, in buffers) before any length can be checked. The page headers
say how large each page is once decompressed, so the pairs source reads them first (a few
bytes per page) and refuses a row group holding a page that inflates far beyond both the image
cap and its own compressed size (image bytes hardly compress; a bomb inflates thousands-fold).

Page headers are Thrift structs in the compact protocol; only the first three fields of
`PageHeader` (type, uncompressed_page_size, compressed_page_size) are read, the rest skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

_MAX_DEPTH = 16  # nesting in a page header (statistics, encodings): a few levels at most


class PageHeaderError(ValueError):
    """A page header that cannot be read: the chunk is not one we can bound."""


class _Reader:
    def __init__(self, f: BinaryIO) -> None:
        self.f = f

    def byte(self) -> int:
        b = self.f.read(1)
        if not b:
            raise PageHeaderError("page header cut short")
        return b[0]

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise PageHeaderError("varint too long")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def skip(self, n: int) -> None:
        if n < 0:
            raise PageHeaderError("negative length")
        self.f.seek(n, 1)

    def skip_value(self, ttype: int, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise PageHeaderError("page header nested too deep")
        if ttype in (1, 2):  # booleans: the value is the type nibble
            return
        if ttype == 3:
            self.skip(1)
        elif ttype in (4, 5, 6):
            self.varint()
        elif ttype == 7:
            self.skip(8)
        elif ttype == 8:
            self.skip(self.varint())
        elif ttype in (9, 10):  # list, set
            head = self.byte()
            size, etype = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            for _ in range(size):
                if etype in (1, 2):  # a boolean in a list takes a byte
                    self.skip(1)
                else:
                    self.skip_value(etype, depth + 1)
        elif ttype == 11:  # map
            size = self.varint()
            if size:
                kv = self.byte()
                for _ in range(size):
                    self.skip_value(kv >> 4, depth + 1)
                    self.skip_value(kv & 0x0F, depth + 1)
        elif ttype == 12:
            self.struct(depth + 1, None)
        else:
            raise PageHeaderError(f"unknown thrift type {ttype}")

    def struct(self, depth: int, want: dict[int, int] | None) -> None:
        """Read a struct; i32 fields whose id is in `want` are stored there, the rest skipped."""
        last = 0
        while True:
            head = self.byte()
            if head == 0:
                return
            delta, ttype = head >> 4, head & 0x0F
            fid = last + delta if delta else self.zigzag()
            last = fid
            if want is not None and fid in want and ttype == 5:
                want[fid] = self.zigzag()
            else:
                self.skip_value(ttype, depth)


def page_sizes(f: BinaryIO, start: int, length: int) -> Iterator[tuple[int, int]]:
    """(uncompressed, compressed) size of each page of the column chunk at [start, start+length).

    Raises PageHeaderError when the headers do not parse or do not tile the chunk.
    """
    r = _Reader(f)
    pos, end = start, start + length
    while pos < end:
        f.seek(pos)
        fields = {2: -1, 3: -1}
        r.struct(0, fields)
        uncompressed, compressed = fields[2], fields[3]
        if uncompressed < 0 or compressed < 0:
            raise PageHeaderError("page header without sizes")
        yield uncompressed, compressed
        pos = f.tell() + compressed
    if pos != end:
        raise PageHeaderError("pages overrun their column chunk")
