"""The `warc` source: .warc / .warc.gz files -> Documents through the HTML path.

Two passes over the given WARCs (files, or directories walked sorted). The first indexes image
records - response/resource records whose payload *sniffs* as an image, whatever their
Content-Type says - by URL -> (file, record offset); only offsets are held, so memory stays
bounded however many images a crawl holds. The second turns HTML records into Documents in
record order, and each page's image URLs are looked up in that index across all given WARCs,
re-reading the one record by seeking to its offset.

Every record is one ledger input: HTML pages are kept (or dropped "no_content" / rejected with
the page's reason); image records, requests, warcinfo, metadata, revisits, non-2xx responses and
other content types are dropped by the "warc" step with a named reason. A WARC that ends early
(truncated .warc.gz, or a record shorter than it declares) keeps the records read so far and
counts one rejection "warc_truncated"; a file that is not a WARC at all counts "not_a_warc".
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from warcio.archiveiterator import ArchiveIterator

from vloom.doc import Document
from vloom.ingest.base import IngestError, IngestOptions
from vloom.ingest.html import (
    MAX_PAGE_BYTES,
    ImageChecker,
    PageError,
    PageSource,
    doc_id,
    extract_page,
    page_document,
    walk_inputs,
)
from vloom.ledger import Ledger
from vloom.media import sniff_image

WARC_SUFFIXES = (".warc", ".warc.gz")
STEP = "warc"
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_SAFE = "/:@!$&'()*+,;=-._~"


class _Truncated(Exception):
    """The WARC ended before a record did (or mid-stream garbage)."""


def normalize_url(url: str) -> str:
    """One spelling per URL for index look-ups: scheme/host lower-case, path percent-encoding
    made canonical (pages write "a%20b.png", crawlers record "a b.png"), no fragment."""
    url = url.strip().strip("<>")
    try:
        p = urlsplit(url)
    except ValueError:
        return url
    path = quote(unquote(p.path), safe=_SAFE) or "/"
    return urlunsplit((p.scheme.lower(), p.netloc.lower(), path, p.query, ""))


def _records(fh: IO[bytes], size: int) -> Iterator[tuple[Any, ArchiveIterator]]:
    """(record, iterator) for each record; read what you need from the record, then
    `iterator.get_record_offset()` is its offset. Raises _Truncated when the file stops
    mid-record, holds unparsable bytes, or carries bytes after the last complete record."""
    it = ArchiveIterator(fh)
    end = 0
    try:
        for rec in it:
            yield rec, it
            offset = it.get_record_offset()  # drives the record to its end
            end = offset + it.get_record_length()
            if rec.raw_stream.limit > 0:
                raise _Truncated(f"record at offset {offset} is shorter than it declares")
    except _Truncated:
        raise
    except Exception as e:  # warcio raises many types (ArchiveLoadFailed, zlib, AttributeError)
        raise _Truncated(f"{type(e).__name__}: {e}") from None
    if end < size:  # uncompressed records end in CRLF CRLF that the length leaves out
        fh.seek(end)
        rest = fh.read(65)
        if len(rest) > 64 or rest.strip():
            raise _Truncated(f"{size - end} bytes after the last complete record")


def _is_warc(path: Path) -> bool:
    """The file starts like a WARC (after gunzip). warcio would read junk as ARC records."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            if head == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=f) as g:
                    head = g.read(5)
            else:
                head = f.read(5)
    except (OSError, EOFError, zlib.error):
        return False
    return head == b"WARC/"


def _status(rec: Any) -> int:
    if rec.http_headers is None:
        return 200  # resource records carry the payload without HTTP headers
    try:
        return int(rec.http_headers.get_statuscode() or 0)
    except ValueError:
        return 0


def _content_type(rec: Any) -> str:
    ct = ""
    if rec.http_headers is not None:
        ct = rec.http_headers.get_header("Content-Type") or ""
    if not ct:
        ct = rec.rec_headers.get_header("Content-Type") or ""
    return ct


def _charset(ct: str) -> str | None:
    for part in ct.split(";")[1:]:
        k, _, v = part.strip().partition("=")
        if k.strip().lower() == "charset":
            return v.strip().strip("\"'") or None
    return None


def _target(rec: Any) -> str:
    return (rec.rec_headers.get_header("WARC-Target-URI") or "").strip().strip("<>")


class WarcImageIndex:
    """URL -> (warc file, record offset) of image records; bytes are re-read on demand."""

    def __init__(self, paths: list[Path], max_bytes: int) -> None:
        self.paths = paths
        self.max_bytes = max_bytes
        self.index: dict[str, tuple[int, int]] = {}
        self._fh: dict[int, IO[bytes]] = {}
        for i, path in enumerate(paths):
            self._scan(i, path)

    def _scan(self, i: int, path: Path) -> None:
        if not _is_warc(path):
            return
        try:
            size = path.stat().st_size
            with open(path, "rb") as fh:
                for rec, it in _records(fh, size):
                    if rec.rec_type not in ("response", "resource") or _status(rec) // 100 != 2:
                        continue
                    url = _target(rec)
                    if url and sniff_image(rec.content_stream().read(16)) is not None:
                        self.index.setdefault(normalize_url(url), (i, it.get_record_offset()))
        except (_Truncated, OSError):
            pass  # what was indexed stays; pass 2 counts the truncation

    def close(self) -> None:
        for fh in self._fh.values():
            fh.close()
        self._fh.clear()

    def get(self, url: str) -> bytes | str | None:
        key = normalize_url(url)
        hit = self.index.get(key)
        if hit is None and "?" in key:  # cache-busting queries ("a.png?v=3") name the same image
            hit = self.index.get(key.split("?", 1)[0])
        if hit is None:
            return None
        i, offset = hit
        fh = self._fh.get(i)
        try:
            if fh is None:
                fh = self._fh[i] = open(self.paths[i], "rb")
            fh.seek(offset)
            rec = next(iter(ArchiveIterator(fh)))
            data = rec.content_stream().read(self.max_bytes + 1)
        except Exception:  # noqa: BLE001 - a record that was readable in pass 1 but not now
            return "warc_reread_failed"
        return "image_too_large" if len(data) > self.max_bytes else data


def _is_html(ct: str, head: bytes) -> bool:
    mime = ct.split(";")[0].strip().lower()
    if mime in _HTML_TYPES:
        return True
    if mime and mime not in ("text/plain", "application/octet-stream", "unknown"):
        return False
    h = head.lstrip()[:15].lower()  # no (useful) type: sniff like a browser would
    return h.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def _warc_files(inputs: list[Path]) -> list[Path]:
    return [p for _, p in walk_inputs(inputs, WARC_SUFFIXES)]


def ingest_warc(inputs: list[Path], ledger: Ledger, opts: IngestOptions) -> Iterator[Document]:
    """The `warc` source: HTML response records -> Documents, images from any given WARC."""
    paths = _warc_files(inputs)
    if not paths:
        names = ", ".join(str(p) for p in inputs)
        raise IngestError(f"{names}: no {' / '.join(WARC_SUFFIXES)} files found")
    store = WarcImageIndex(paths, opts.max_image_bytes)
    checker = ImageChecker(opts.max_image_bytes)
    try:
        for path in paths:
            yield from _one_warc(path, store, checker, ledger, opts)
    finally:
        store.close()


def _one_warc(
    path: Path, store: WarcImageIndex, checker: ImageChecker, ledger: Ledger, opts: IngestOptions
) -> Iterator[Document]:
    seen = 0
    try:
        size = path.stat().st_size
        fh = open(path, "rb")
    except OSError:
        ledger.input += 1
        ledger.reject("unreadable_file")
        return
    if size and not _is_warc(path):
        fh.close()
        ledger.input += 1
        ledger.reject("not_a_warc")
        return
    open_record = False  # counted as input but not yet settled
    with fh:
        try:
            for rec, it in _records(fh, size):
                seen += 1
                ledger.input += 1
                open_record = True
                outcome = _record(rec, it, path, store, checker, ledger, opts)
                open_record = False
                if isinstance(outcome, Document):
                    yield outcome
        except _Truncated:
            if not open_record:  # the rest of the file is the one input that failed
                ledger.input += 1
            ledger.reject("warc_truncated" if seen else "not_a_warc")


def _record(
    rec: Any,
    it: ArchiveIterator,
    path: Path,
    store: WarcImageIndex,
    checker: ImageChecker,
    ledger: Ledger,
    opts: IngestOptions,
) -> Document | None:
    """Count one record; return its Document if it is a page with content."""
    if rec.rec_type not in ("response", "resource"):
        ledger.drop(STEP, f"{rec.rec_type}_record")
        return None
    status = _status(rec)
    if status // 100 != 2:
        ledger.drop(STEP, f"http_{status // 100}xx" if status else "bad_http_status")
        return None
    try:
        stream = rec.content_stream()
        head = stream.read(512)
        if sniff_image(head[:16]) is not None:
            ledger.drop(STEP, "image_record")  # its bytes serve pages' <img> via the index
            return None
        ct = _content_type(rec)
        if not _is_html(ct, head):
            ledger.drop(STEP, "not_html")
            return None
        body = head + stream.read(MAX_PAGE_BYTES + 1 - len(head))
    except _Truncated:
        raise
    except Exception as e:  # a payload that breaks mid-read (truncated gzip member, bad chunking)
        raise _Truncated(f"{type(e).__name__}: {e}") from None
    if len(body) > MAX_PAGE_BYTES:
        ledger.reject("page_too_large")
        return None
    url = _target(rec)
    offset = it.get_record_offset()  # reads the record to its end: now we know if it is whole
    if rec.raw_stream.limit > 0:
        raise _Truncated(f"record at offset {offset} is shorter than it declares")
    try:
        page = extract_page(body, _charset(ct))
    except PageError as e:
        ledger.reject(e.reason)
        return None
    return page_document(
        page,
        PageSource(url=url),
        ledger,
        opts,
        checker,
        "warc",
        doc_id("warc", f"{url} {path.name}:{offset}"),
        store=store,
        extra_meta={"warc": path.name, "warc_offset": offset},
    )
