"""WARC records read through damage: resynchronise after a corrupt record, cap declared lengths.

`records` yields each record warcio can parse, and a `Lost` for each one it cannot. After a
failure it looks for the next record start after the broken one: in a .warc.gz the next gzip
member (magic 1f 8b 08) that inflates to "WARC/", in an uncompressed WARC the next line that
starts "WARC/1."; reading resumes there, so one corrupt member costs one record, not the rest of
the file. A candidate member that does not inflate is one more corrupt record. Counting is
best-effort: a member that lost its gzip header is not seen, and an uncompressed record's
payload could hold a line that looks like a WARC header.

A record whose declared Content-Length exceeds `max_record_bytes` is neither read nor drained:
it is `Lost("warc_record_too_large")` and reading resumes at the next record start after it.
When nothing valid follows a failure, the rest of the file is one `Lost("warc_truncated")`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from warcio.archiveiterator import ArchiveIterator

MAX_RECORD_BYTES = 1024**3  # declared Content-Length above this: rejected unread
_GZIP_MAGIC = b"\x1f\x8b\x08"
_WARC_LINE = b"\nWARC/1."
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Lost:
    """A record that could not be read. `yielded`: it is the record last handed out (already
    counted by the reader), not one more."""

    reason: str  # warc_record_corrupt | warc_record_too_large | warc_truncated
    offset: int
    yielded: bool = False


class _Skip(Exception):
    """The record under way is given up (too large or cut short); resynchronise after it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def records(
    fh: IO[bytes], size: int, max_record_bytes: int = MAX_RECORD_BYTES
) -> Iterator[tuple[Any, ArchiveIterator] | Lost]:
    """(record, iterator) for each readable record, a Lost for each unreadable one. Read what
    you need from a record before the next item; `iterator.get_record_offset()` is its offset."""
    gz = is_gzip(fh)
    pos = 0
    while True:
        fh.seek(pos)
        it = ArchiveIterator(fh)
        start, yielded, reason = pos, False, "warc_record_corrupt"
        try:
            for rec in it:
                start, yielded = max(it.offset, pos), False
                if _declared(rec) > max_record_bytes:
                    raise _Skip("warc_record_too_large")
                yielded = True
                yield rec, it
                if not record_whole(rec, it, fh, gz):
                    raise _Skip("warc_record_corrupt")
                start, yielded = it.get_record_offset() + it.get_record_length(), False
        except _Skip as e:
            reason = e.reason
        except Exception:  # noqa: BLE001 - warcio raises many types (ArchiveLoadFailed, zlib...)
            pass
        else:
            if _clean_tail(fh, start, size):
                return
        nxt, bad_members = _resync(fh, _skip_blank(fh, start) + 1, gz)
        if nxt is None:  # nothing valid follows: was the last record cut off, or broken?
            if reason != "warc_record_too_large":
                broken = gz and _member_broken(fh, start)
                reason = "warc_record_corrupt" if broken else "warc_truncated"
            yield Lost(reason, start, yielded)
            return
        yield Lost(reason, start, yielded)
        for _ in range(bad_members):
            yield Lost("warc_record_corrupt", start)
        pos = nxt


def is_gzip(fh: IO[bytes]) -> bool:
    fh.seek(0)
    gz = fh.read(2) == b"\x1f\x8b"
    fh.seek(0)
    return gz


def record_whole(rec: Any, it: ArchiveIterator, fh: IO[bytes], gz: bool) -> bool:
    """Whether a record, driven to its end, held all it declares and - in a .warc.gz - ended
    where its gzip member ends. warcio reads a member that stops inflating as a short record (or,
    in the first block, as uncompressed bytes), so a record that does not end at the next member
    start (or the end of the file) is not whole."""
    end = it.get_record_offset() + it.get_record_length()  # drives the record to its end
    if rec.raw_stream.limit > 0:
        return False
    if not gz:
        return True
    here = fh.tell()
    fh.seek(end)
    nxt = fh.read(len(_GZIP_MAGIC))
    fh.seek(here)
    return nxt in (b"", _GZIP_MAGIC)


def looks_like_warc(fh: IO[bytes]) -> bool:
    """The open file starts like a WARC (after gunzip), or - its first gzip member corrupt - a
    later member does. warcio would read junk as ARC records."""
    fh.seek(0)
    if fh.read(2) != b"\x1f\x8b":
        fh.seek(0)
        return fh.read(5) == b"WARC/"
    ok = _inflates_to_warc(fh, 0)
    return ok is True or (ok is None and _resync(fh, 1, True)[0] is not None)


def _declared(rec: Any) -> int:
    try:
        return int(rec.rec_headers.get_header("Content-Length") or 0)
    except ValueError:
        return 0


def _clean_tail(fh: IO[bytes], end: int, size: int) -> bool:
    """Nothing but blank lines after the last complete record (uncompressed records end in
    CRLF CRLF that the length leaves out)."""
    if end >= size:
        return True
    fh.seek(end)
    rest = fh.read(65)
    return len(rest) <= 64 and not rest.strip()


def _skip_blank(fh: IO[bytes], pos: int) -> int:
    """The first offset at or after `pos` that is not blank (records may start after CRLFs)."""
    fh.seek(pos)
    head = fh.read(64)
    return pos + len(head) - len(head.lstrip())


def _resync(fh: IO[bytes], pos: int, gz: bool) -> tuple[int | None, int]:
    """(offset of the next record start at or after `pos`, corrupt gzip members passed over)."""
    bad = 0
    for cand in _candidates(fh, pos, _GZIP_MAGIC if gz else _WARC_LINE):
        if not gz:
            return cand + 1, 0  # the record starts after the newline
        ok = _inflates_to_warc(fh, cand)
        if ok:
            return cand, bad
        if ok is None:
            bad += 1  # a member header whose data does not inflate
    return None, bad


def _member_broken(fh: IO[bytes], pos: int) -> bool:
    """Whether the gzip member at `pos` is whole but unreadable (bad data or checksum), rather
    than cut off by the end of the file. Streams the member; keeps none of it."""
    fh.seek(pos)
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        while not d.eof:
            data = d.unconsumed_tail or fh.read(_CHUNK)
            if not data:
                return False  # the file ends inside the member
            d.decompress(data, _CHUNK)
    except zlib.error:
        return True
    return True  # a whole member that warcio still could not read as a record


def _candidates(fh: IO[bytes], pos: int, magic: bytes) -> Iterator[int]:
    """Offsets of `magic` at or after `pos`, read in chunks (memory stays one chunk)."""
    while True:
        fh.seek(pos)
        chunk = fh.read(_CHUNK + len(magic) - 1)
        if len(chunk) < len(magic):
            return
        i = chunk.find(magic)
        while i != -1 and i < _CHUNK:
            yield pos + i
            i = chunk.find(magic, i + 1)
        pos += _CHUNK


def _inflates_to_warc(fh: IO[bytes], pos: int) -> bool | None:
    """True: a gzip member that starts with a WARC header; None: it does not inflate (corrupt);
    False: it inflates but is something else (magic bytes inside compressed data)."""
    fh.seek(pos)
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = b""
    try:
        for _ in range(1024):  # at most 64 KB of input, in small pieces: a corrupt spot
            data = fh.read(64)  # further on must not hide the first bytes
            if not data:
                break
            out += d.decompress(data)
            if len(out) >= 5 or d.eof:
                break
    except zlib.error:
        return None
    return out.startswith(b"WARC/")
