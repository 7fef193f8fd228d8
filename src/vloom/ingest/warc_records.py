"""WARC records read through damage: resynchronise after a corrupt record, cap declared lengths.

`records` yields a `Rec` - headers and the first `keep` bytes of the decoded payload - for each
whole record, and a `Lost` for each one it cannot read. FastWARC reads while the file is sound;
at the first thing it does not read cleanly (an error, a record shorter than it declares, a
declared length over the cap) and at the end of the file, warcio takes over from the last good
record, with the resynchronisation below, so damage is counted the same whichever reader ran.
Without FastWARC (or with reader="warcio") warcio reads the whole file.

After a failure the next record start after the broken one is found: in a .warc.gz the next gzip
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

try:
    from fastwarc.warc import ArchiveIterator as FastIterator
except ImportError:  # warcio reads everything
    FastIterator = None
try:  # FastWARC's own header keys: found without encoding and case-folding a str each time
    from fastwarc.warc import WarcHeader

    _CONTENT_LENGTH, _CONTENT_TYPE = WarcHeader.CONTENT_LENGTH, WarcHeader.CONTENT_TYPE
    _WARC_TYPE, _TARGET_URI = WarcHeader.WARC_TYPE, WarcHeader.WARC_TARGET_URI
except ImportError:  # an older FastWARC: the same look-ups by name (case-insensitive too)
    _CONTENT_LENGTH, _CONTENT_TYPE = "Content-Length", "Content-Type"
    _WARC_TYPE, _TARGET_URI = "WARC-Type", "WARC-Target-URI"

MAX_RECORD_BYTES = 1024**3  # declared Content-Length above this: rejected unread
_GZIP_MAGIC = b"\x1f\x8b\x08"
_WARC_LINE = b"\nWARC/1."
_CHUNK = 1 << 20
_IDENTITY = ("", "identity")


def default_reader() -> str:
    return "fastwarc" if FastIterator is not None else "warcio"


@dataclass(slots=True)
class Rec:
    """One whole record. `payload`: its first `keep` bytes, HTTP Content-/Transfer-Encoding
    undone (as warcio does); `payload_len`: the decoded length read (up to keep + 1)."""

    rec_type: str
    target: str
    status: int  # 200 for records without HTTP headers; 0 when the status does not parse
    content_type: str  # HTTP Content-Type, else the record's
    offset: int
    payload: bytes
    truncated: bool  # the payload is longer than `keep`


@dataclass(frozen=True, slots=True)
class Lost:
    """A record that could not be read."""

    reason: str  # warc_record_corrupt | warc_record_too_large | warc_truncated
    offset: int


class _Skip(Exception):
    """The record under way is given up (too large or cut short); resynchronise after it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Handoff(Exception):
    """FastWARC stops here: warcio goes on from `pos` (no record there was handed out)."""

    def __init__(self, pos: int) -> None:
        super().__init__(pos)
        self.pos = pos


def records(
    fh: IO[bytes],
    size: int,
    max_record_bytes: int = MAX_RECORD_BYTES,
    keep: int = 512,
    reader: str | None = None,
    start: int = 0,
) -> Iterator[Rec | Lost]:
    """A Rec for each readable record, a Lost for each unreadable one, in file order, from
    `start` (0, or the start of a record the whole file's reading reached as a Rec)."""
    pos = start
    if (reader or default_reader()) == "fastwarc" and FastIterator is not None:
        try:
            yield from _fast(fh, max_record_bytes, keep, start)
        except _Handoff as h:
            pos = h.pos
    yield from _warcio(fh, size, max_record_bytes, keep, pos)


def _fast(fh: IO[bytes], max_record_bytes: int, keep: int, start: int = 0) -> Iterator[Rec]:
    """FastWARC over the file from `start`; raises _Handoff where warcio must go on.

    A record is handed out only once FastWARC has read the next one: the last record (and one
    followed by damage) is left to warcio, which also checks that its gzip member ends whole."""
    fh.seek(start)
    held: Rec | None = None
    try:
        for rec in FastIterator(fh, parse_http=True):
            start = rec.stream_pos
            headers = rec.headers
            declared = headers.get(_CONTENT_LENGTH)
            wtype = headers.get(_WARC_TYPE)
            if not wtype or not declared or not declared.isdigit():
                break  # a header cut short or garbled
            if int(declared) > max_record_bytes:
                break
            out = _fast_rec(rec, fh, keep, wtype)
            if out is None:
                break
            if held is not None:
                yield held
            held = out
    except Exception:  # noqa: BLE001 - FastWARC raises OSError (and others) on damage
        pass
    raise _Handoff(held.offset if held is not None else start)


def _fast_rec(rec: Any, fh: IO[bytes], keep: int, wtype: str) -> Rec | None:
    """The record (of WARC-Type `wtype`), read to its end; None when it holds less than it
    declares."""
    http = rec.http_headers if rec.is_http else None
    want = rec.content_length
    head = rec.reader.read(min(want, keep + 1))
    got = len(head)
    while got < want:
        data = rec.reader.read(min(_CHUNK, want - got))
        if not data:
            return None
        got += len(data)
    if got != want:
        return None
    ct = ""
    status = 200
    if http is not None:
        status = http.status_code or 0
        ct = http.get(_CONTENT_TYPE) or ""
        enc = (http.get("Content-Encoding") or "").strip().lower()
        te = (http.get("Transfer-Encoding") or "").strip().lower()
        if enc not in _IDENTITY or te not in _IDENTITY:
            head = _decoded(fh, rec.stream_pos, keep)  # warcio undoes them (rare in crawls)
    ct = ct or rec.headers.get(_CONTENT_TYPE) or ""
    return Rec(
        wtype,
        (rec.headers.get(_TARGET_URI) or "").strip().strip("<>"),
        status,
        ct,
        rec.stream_pos,
        head[:keep],
        len(head) > keep,
    )


def _decoded(fh: IO[bytes], offset: int, keep: int) -> bytes:
    """The first keep + 1 decoded payload bytes of the record at `offset`, through warcio;
    the file position is restored (FastWARC reads on from it)."""
    here = fh.tell()
    try:
        fh.seek(offset)
        rec = next(iter(ArchiveIterator(fh)))
        return rec.content_stream().read(keep + 1)
    finally:
        fh.seek(here)


def read_payload_at(fh: IO[bytes], offset: int, max_bytes: int, reader: str | None = None) -> bytes:
    """Up to max_bytes + 1 decoded payload bytes of the record at `offset` (raises on damage)."""
    fh.seek(offset)
    if (reader or default_reader()) == "fastwarc" and FastIterator is not None:
        rec = next(iter(FastIterator(fh, parse_http=True)))
        http = rec.http_headers if rec.is_http else None
        if http is None or (
            (http.get("Content-Encoding") or "").strip().lower() in _IDENTITY
            and (http.get("Transfer-Encoding") or "").strip().lower() in _IDENTITY
        ):
            return rec.reader.read(max_bytes + 1)
        fh.seek(offset)
    rec = next(iter(ArchiveIterator(fh)))
    return rec.content_stream().read(max_bytes + 1)


def _int(v: str | None) -> int:
    try:
        return int(v or 0)
    except ValueError:
        return 0


def _warcio(
    fh: IO[bytes], size: int, max_record_bytes: int, keep: int, pos: int
) -> Iterator[Rec | Lost]:
    """warcio from `pos` to the end, resynchronising after damage."""
    gz = is_gzip(fh)
    while True:
        fh.seek(pos)
        it = ArchiveIterator(fh)
        start, reason = pos, "warc_record_corrupt"
        try:
            for rec in it:
                start = max(it.offset, pos)
                if _declared(rec) > max_record_bytes:
                    raise _Skip("warc_record_too_large")
                try:
                    out = _warcio_rec(rec, it, start, keep)
                except Exception:  # noqa: BLE001 - the payload breaks mid-read
                    raise _Skip("warc_record_corrupt") from None
                if not record_whole(rec, it, fh, gz):
                    raise _Skip("warc_record_corrupt")
                yield out
                start = it.get_record_offset() + it.get_record_length()
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
            yield Lost(reason, start)
            return
        yield Lost(reason, start)
        for _ in range(bad_members):
            yield Lost("warc_record_corrupt", start)
        pos = nxt


def _warcio_rec(rec: Any, it: ArchiveIterator, offset: int, keep: int) -> Rec:
    status = 200  # resource records carry the payload without HTTP headers
    ct = ""
    if rec.http_headers is not None:
        try:
            status = int(rec.http_headers.get_statuscode() or 0)
        except ValueError:
            status = 0
        ct = rec.http_headers.get_header("Content-Type") or ""
    ct = ct or rec.rec_headers.get_header("Content-Type") or ""
    head = b""
    if rec.rec_type in ("response", "resource") and status // 100 == 2:
        head = rec.content_stream().read(keep + 1)
    return Rec(
        rec.rec_type,
        (rec.rec_headers.get_header("WARC-Target-URI") or "").strip().strip("<>"),
        status,
        ct,
        offset,
        head[:keep],
        len(head) > keep,
    )


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
    # the file may end a byte or two into the next member's magic: this record is whole, the
    # next one is cut (counted as warc_truncated where it starts)
    return _GZIP_MAGIC.startswith(nxt)


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
