"""The `warc` source: .warc / .warc.gz files -> Documents through the HTML path.

Two passes over the given WARCs (files, or directories walked sorted). The first indexes image
records - response/resource records whose payload *sniffs* as an image, whatever their
Content-Type says - by URL -> (file, record offset), and keeps the bytes of the first
IMAGE_CACHE_BYTES (64 MiB) of them; beyond that only offsets are held, so memory stays bounded
however many images a crawl holds. The second turns HTML records into Documents in record
order, and each page's image URLs are looked up in that index across all given WARCs, taking
the kept bytes or re-reading the one record by seeking to its offset.

Every record is one ledger input: HTML pages are kept (or dropped "no_content" / rejected with
the page's reason); image records, requests, warcinfo, metadata, revisits, non-2xx responses and
other content types are dropped by the "warc" step with a named reason. Damage is read through
(see warc_records, which reads with FastWARC and hands over to warcio where FastWARC stops, or
reads with warcio throughout under opts.extra["warc_reader"] = "warcio"): a corrupt record (a
gzip member that does not inflate, a record shorter than it declares) counts one rejection
"warc_record_corrupt" and reading resumes at the next record; a record declaring more than
opts.extra["max_record_bytes"] (default 1 GiB) is rejected "warc_record_too_large" unread; a
WARC that ends early keeps the records read so far and counts one rejection "warc_truncated"; a
file that is not a WARC at all counts "not_a_warc". Files found by walking a directory must lie
inside it ("outside_root") and be regular files.

In a parallel run (--workers, executor.py) each WARC is scanned first (`scan_warc`: pass 1's
image records and the offsets where its records can be split), the scans are merged into one
image index, and each range of records is ingested as a part (`_ingest_range`), its images
read from the payloads the scans wrote out (else re-read by offset); the output is that of one
process (no range starts past a point where the scan's reading failed, so such a failure ends
the file there as it does in one process).

Each record runs inside the failure boundary (ingest.base.UnitBoundary): a record whose handling
raises or runs past opts.unit_timeout is rejected "record_error:<Type>" / "record_timeout" and
the next record is read; a reading failure outside any record ends that file as
"file_error:<Type>", keeping its earlier documents.
"""

from __future__ import annotations

import functools
import os
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from vloom.doc import Document
from vloom.ingest.base import (
    IngestError,
    IngestOptions,
    UnitBoundary,
    inside_root,
    open_regular_file,
)
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
from vloom.ingest.warc_records import (
    MAX_RECORD_BYTES,
    Lost,
    Rec,
    looks_like_warc,
    read_payload_at,
    records,
)
from vloom.ledger import Ledger
from vloom.media import sniff_image
from vloom.ondisk import read_json

WARC_SUFFIXES = (".warc", ".warc.gz")
STEP = "warc"
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_SAFE = "/:@!$&'()*+,;=-._~"


@functools.lru_cache(maxsize=1 << 16)  # pages name the same icons and figures again and again
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


def _charset(ct: str) -> str | None:
    for part in ct.split(";")[1:]:
        k, _, v = part.strip().partition("=")
        if k.strip().lower() == "charset":
            return v.strip().strip("\"'") or None
    return None


IMAGE_CACHE_BYTES = 64 * 1024 * 1024  # image payloads pass 1 keeps; the others are re-read
PAGE_CACHE_BYTES = 64 * 1024 * 1024  # page payloads pass 1 keeps; past it a file is read again
REREAD_CACHE_BYTES = 16 * 1024 * 1024  # re-read image payloads kept, least recently used out


class WarcImageIndex:
    """URL -> (warc file, record offset) of image records. Pass 1 keeps the payloads of the
    first IMAGE_CACHE_BYTES of them (it reads them anyway); any other is re-read on demand,
    and the last REREAD_CACHE_BYTES of re-read ones are kept (pages of a site name the same
    icons again and again; a parallel run's part has no pass 1 and re-reads every image).

    Pass 1 also keeps each file's records as pass 2 reads them (`replay`): pages whole (up to
    PAGE_CACHE_BYTES of them in all), every other record its first 512 bytes (all pass 2 looks
    at), so pass 2 need not inflate the file again. A file whose pages pass that budget, or
    whose reading failed in pass 1, is read again by pass 2."""

    def __init__(
        self,
        paths: list[Path],
        max_bytes: int,
        max_record_bytes: int = MAX_RECORD_BYTES,
        reader: str | None = None,
        index: dict[str, tuple[int, int]] | None = None,
    ) -> None:
        self.paths = paths
        self.reader = reader
        self.max_bytes = max_bytes
        self.max_record_bytes = max_record_bytes
        self.index: dict[str, tuple[int, int]] = {}
        self._kept: dict[tuple[int, int], bytes] = {}
        self._kept_bytes = 0
        self._reread: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._reread_bytes = 0
        self._fh: dict[int, IO[bytes]] = {}
        # a parallel run's scans wrote the payloads pass 1 would keep to a file per WARC:
        # (file, record offset) -> (position, length) in blobs[file]
        self.blobs: list[Path | None] = []
        self.in_blob: dict[tuple[int, int], tuple[int, int]] = {}
        self._blob_fh: dict[int, IO[bytes]] = {}
        self.replay: dict[int, list[Rec | Lost]] = {}
        self._page_bytes = 0
        if index is not None:  # a parallel run's part: the files were scanned before
            self.index = index
            return
        for i, path in enumerate(paths):
            self._scan(i, path)

    def _scan(self, i: int, path: Path) -> None:
        # read as far as either pass needs: an image's cap, a page's cap
        keep = max(self.max_bytes, MAX_PAGE_BYTES)
        items: list[Rec | Lost] | None = []
        counted = 0
        try:
            with open_regular_file(path) as fh:
                if not looks_like_warc(fh):
                    return
                size = os.fstat(fh.fileno()).st_size
                for rec in records(fh, size, self.max_record_bytes, keep, self.reader):
                    if items is not None:
                        item, n = _as_pass2(rec)
                        counted += n
                        if self._page_bytes + counted > PAGE_CACHE_BYTES:
                            items, counted = None, 0  # pass 2 reads this file again
                        else:
                            items.append(item)
                    if isinstance(rec, Lost):
                        continue  # pass 2 counts it
                    if _is_image_record(rec):
                        self._add(normalize_url(rec.target), i, rec)
        except Exception:  # noqa: BLE001 - what was indexed stays; pass 2 counts the failure
            return
        if items is not None:
            self.replay[i] = items
            self._page_bytes += counted

    def _add(self, key: str, i: int, rec: Rec) -> None:
        if key in self.index:
            return  # the first record of a URL serves it
        self.index[key] = (i, rec.offset)
        n = len(rec.payload)
        if not rec.truncated and n <= self.max_bytes and self._kept_bytes + n <= IMAGE_CACHE_BYTES:
            self._kept[(i, rec.offset)] = rec.payload
            self._kept_bytes += n

    def close(self) -> None:
        self._kept.clear()
        self._reread.clear()
        self.replay.clear()
        for fh in [*self._fh.values(), *self._blob_fh.values()]:
            fh.close()
        self._fh.clear()
        self._blob_fh.clear()

    def get(self, url: str) -> bytes | str | None:
        key = normalize_url(url)
        hit = self.index.get(key)
        if hit is None and "?" in key:  # cache-busting queries ("a.png?v=3") name the same image
            hit = self.index.get(key.split("?", 1)[0])
        if hit is None:
            return None
        kept = self._kept.get(hit)
        if kept is None:
            kept = self._reread.get(hit)
            if kept is not None:
                self._reread.move_to_end(hit)
        if kept is not None:
            return kept
        i, offset = hit
        at = self.in_blob.get(hit)
        if at is not None:
            blob = self._blob_fh.get(i)
            if blob is None:
                blob = self._blob_fh[i] = open(self.blobs[i], "rb")  # type: ignore[arg-type]
            return os.pread(blob.fileno(), at[1], at[0])
        fh = self._fh.get(i)
        try:
            if fh is None:
                fh = self._fh[i] = open(self.paths[i], "rb")
            data = read_payload_at(fh, offset, self.max_bytes, self.reader)
        except Exception:  # noqa: BLE001 - a record that was readable in pass 1 but not now
            return "warc_reread_failed"
        if len(data) > self.max_bytes:
            return "image_too_large"
        self._remember(hit, data)
        return data

    def _remember(self, hit: tuple[int, int], data: bytes) -> None:
        if len(data) > REREAD_CACHE_BYTES // 4:
            return  # a large image would push out many small ones
        self._reread[hit] = data
        self._reread_bytes += len(data)
        while self._reread_bytes > REREAD_CACHE_BYTES:
            self._reread_bytes -= len(self._reread.popitem(last=False)[1])


def _no_page(rec: Rec) -> str:
    """Why a record is no page (its drop reason), or "" for a page."""
    if rec.rec_type not in ("response", "resource"):
        return f"{rec.rec_type}_record"
    if rec.status // 100 != 2:
        return f"http_{rec.status // 100}xx" if rec.status else "bad_http_status"
    if sniff_image(rec.payload[:16]) is not None:
        return "image_record"  # its bytes serve pages' <img> via the index
    if not _is_html(rec.content_type, rec.payload[:512]):
        return "not_html"
    return ""


def _as_pass2(rec: Rec | Lost) -> tuple[Rec | Lost, int]:
    """(the record as pass 2 reads it - payload up to MAX_PAGE_BYTES - from one read with a
    larger cap, page bytes kept): a page whole, any other record its first 512 bytes."""
    if isinstance(rec, Lost):
        return rec, 0
    body = rec.payload
    truncated = rec.truncated or len(body) > MAX_PAGE_BYTES
    page = not _no_page(rec)
    body = body[:MAX_PAGE_BYTES] if page else body[:512]
    if body is rec.payload and truncated == rec.truncated:
        return rec, len(body) if page else 0  # read whole as pass 2 would: the same record
    out = Rec(rec.rec_type, rec.target, rec.status, rec.content_type, rec.offset, body, truncated)
    return out, len(body) if page else 0


def _is_html(ct: str, head: bytes) -> bool:
    mime = ct.split(";")[0].strip().lower()
    if mime in _HTML_TYPES:
        return True
    if mime and mime not in ("text/plain", "application/octet-stream", "unknown"):
        return False
    h = head.lstrip()[:15].lower()  # no (useful) type: sniff like a browser would
    return h.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def _warc_files(inputs: list[Path]) -> list[tuple[Path, Path | None]]:
    """(file, root): a file found by walking a directory carries it; a named file None."""
    return [
        (p, root if Path(inp).is_dir() else None)
        for inp in inputs
        for root, p in walk_inputs([Path(inp)], WARC_SUFFIXES)
    ]


def ingest_warc(inputs: list[Path], ledger: Ledger, opts: IngestOptions) -> Iterator[Document]:
    """The `warc` source: HTML response records -> Documents, images from any given WARC."""
    if "_warc_part" in opts.extra:  # one range of one WARC, in a parallel run (executor.py)
        yield from _ingest_range(opts.extra["_warc_part"], ledger, opts)
        return
    found = _warc_files(inputs)
    if not found:
        names = ", ".join(str(p) for p in inputs)
        raise IngestError(f"{names}: no {' / '.join(WARC_SUFFIXES)} files found")
    max_record, reader = _options(opts)
    outside = [p for p, root in found if root is not None and not inside_root(p, root)]
    paths = [p for p, _ in found if p not in outside]
    for _ in outside:  # a symlink out of the input directory: never opened
        ledger.input += 1
        ledger.reject("outside_root")
    store = WarcImageIndex(paths, opts.max_image_bytes, max_record, reader)
    checker = ImageChecker(opts.max_image_bytes)
    boundary = UnitBoundary(ledger, opts, "record")
    try:
        for i, path in enumerate(paths):
            units = _one_warc(i, path, store, checker, ledger, opts, max_record, reader, boundary)
            yield from boundary.stream(str(path), units)  # a break in reading: "file_error:..."
    finally:
        store.close()


def _options(opts: IngestOptions) -> tuple[int, str | None]:
    """(max_record_bytes, warc_reader) from the source options, checked."""
    reader = opts.extra.get("warc_reader")  # "fastwarc" (default when installed) | "warcio"
    if reader not in (None, "fastwarc", "warcio"):
        raise IngestError(f"warc_reader={reader!r}: expected fastwarc or warcio")
    return int(opts.extra.get("max_record_bytes", MAX_RECORD_BYTES)), reader


# --- parallel runs (executor.py): scan every WARC, then ingest ranges of records ---------------
# A range's work is its pages (what is extracted; every other record is only inflated), counted
# in file bytes ("weight"); ranges are cut where records of at least
# range_weight(...) of it lie between two cuts, at points the scan offers every CUT_STEP of it.
CUT_STEP = 64 << 10
MIN_RANGE, RANGES = 512 << 10, 16  # ranges of at least 512 KiB of weight, about 16 in a run


def scan_warc(
    path: Path, root: Path | None, opts: IngestOptions, blob: Path | None = None
) -> dict[str, Any]:
    """A parallel run's first look at one WARC, as pass 1 reads it: {"inside": False} for a
    file outside its input directory (never opened), else its image records ("images": [URL,
    offset] for the first record of each URL; with `blob`, [URL, offset, position, length] for
    one whose payload pass 1 would keep, written there at that position, so that a part takes
    it from there instead of inflating the record again), its "weight", and where ranges may
    start ("cuts":
    [offset, weight before it] of records read whole right after a whole record, CUT_STEP of
    weight apart, or opts.extra["warc_range_bytes"]). A file whose reading fails keeps what was
    scanned before it (no cut lies past the failure: the range reading it counts it)."""
    if root is not None and not inside_root(path, root):
        return {"inside": False, "images": [], "cuts": [], "weight": 0}
    max_record, reader = _options(opts)
    step = min(CUT_STEP, int(opts.extra.get("warc_range_bytes", CUT_STEP)))
    images: dict[str, list[Any]] = {}
    cuts: list[list[int]] = []
    weight = last = 0
    prev: int | None = None  # offset of the previous record, if it weighs
    whole = True
    keep = max(opts.max_image_bytes, MAX_PAGE_BYTES) if blob else 512  # as pass 1 reads
    out = open(blob, "wb") if blob else None
    try:
        with open_regular_file(path) as fh:
            if not looks_like_warc(fh):
                raise ValueError("not a WARC")  # one range: it counts why
            size = os.fstat(fh.fileno()).st_size
            for rec in records(fh, size, max_record, keep, reader):
                if prev is not None:
                    weight += rec.offset - prev
                prev = None
                if isinstance(rec, Lost):
                    whole = False
                    continue
                if whole and weight - last >= step:
                    cuts.append([rec.offset, weight])
                    last = weight
                whole = True
                if _is_image_record(rec):
                    url = normalize_url(rec.target)
                    if url in images:
                        continue  # the first record of a URL serves it
                    images[url] = [url, rec.offset]
                    n = len(rec.payload)
                    if out is not None and not rec.truncated and n <= opts.max_image_bytes:
                        images[url] += [out.tell(), n]
                        out.write(rec.payload)
                elif _as_pass2(rec)[1]:  # a page
                    prev = rec.offset
            if prev is not None:
                weight += size - prev
    except Exception:  # noqa: BLE001 - what was scanned stays; the range reading it counts it
        pass
    finally:
        if out is not None:
            out.close()
    return {"inside": True, "images": list(images.values()), "cuts": cuts, "weight": weight}


def range_weight(total: int, opts: IngestOptions) -> int:
    """The weight of one range in a run whose WARCs weigh `total` (inputs only, never the
    number of workers: a rerun with another --workers resumes the same ranges)."""
    if "warc_range_bytes" in opts.extra:
        return int(opts.extra["warc_range_bytes"])
    return max(MIN_RANGE, total // RANGES)


def range_starts(scan: dict[str, Any], per_range: int) -> list[int]:
    """Offsets where the file's ranges start after the first (at 0)."""
    starts, last = [], 0
    for offset, weight in scan["cuts"]:
        if weight - last >= per_range:
            starts.append(offset)
            last = weight
    return starts


def _is_image_record(rec: Rec) -> bool:
    """A record whose payload serves pages' <img> (what pass 1 indexes)."""
    return bool(rec.target) and _no_page(rec) == "image_record"


@functools.lru_cache(maxsize=2)
def _run_index(path: str, mtime_ns: int, size: int, max_image_bytes: int) -> tuple[Any, ...]:
    """A run's merged image index (paths, blob paths, URL -> (file, offset), (file, offset) ->
    blob position) and one ImageChecker, read once per worker for all the parts it runs of that
    run (keyed by the index file's identity; a URL's image is the same in every part)."""
    merged = read_json(Path(path))
    paths = [Path(p) for p in merged["paths"]]
    blobs = [Path(b) if b else None for b in merged.get("blobs", [])]
    index = {url: (i, off) for url, i, off, *_ in merged["images"]}
    in_blob = {(e[1], e[2]): (e[3], e[4]) for e in merged["images"] if len(e) == 5}
    return paths, blobs, index, in_blob, ImageChecker(max_image_bytes)


def _ingest_range(part: dict[str, Any], ledger: Ledger, opts: IngestOptions) -> Iterator[Document]:
    """Records of one WARC from part["start"] up to part["end"] (None: its end), images looked
    up in the merged scan of every given WARC (part["index"]: {"paths", "images"})."""
    if part["file"] is None:  # a symlink out of the input directory: never opened
        ledger.input += 1
        ledger.reject("outside_root")
        return
    max_record, reader = _options(opts)
    st = os.stat(part["index"])
    paths, blobs, index, in_blob, checker = _run_index(
        part["index"], st.st_mtime_ns, st.st_size, opts.max_image_bytes
    )
    store = WarcImageIndex(paths, opts.max_image_bytes, max_record, reader, index=index)
    store.blobs, store.in_blob = blobs, in_blob
    boundary = UnitBoundary(ledger, opts, "record")
    i, path = part["file"], paths[part["file"]]
    span = (part["start"], part["end"])
    try:
        units = _one_warc(i, path, store, checker, ledger, opts, max_record, reader, boundary, span)
        yield from boundary.stream(str(path), units)
    finally:
        store.close()


def _one_warc(
    i: int,
    path: Path,
    store: WarcImageIndex,
    checker: ImageChecker,
    ledger: Ledger,
    opts: IngestOptions,
    max_record: int,
    reader: str | None,
    boundary: UnitBoundary,
    span: tuple[int, int | None] = (0, None),
) -> Iterator[Document]:
    start, end = span
    try:
        fh = open_regular_file(path)
    except OSError:
        ledger.input += 1
        ledger.reject("unreadable_file")  # also a FIFO or device named *.warc
        return
    size = os.fstat(fh.fileno()).st_size
    if size and not looks_like_warc(fh):
        fh.close()
        ledger.input += 1
        ledger.reject("not_a_warc")
        return
    seen = 1 if start else 0  # a range after the first starts at a whole record
    replay = store.replay.pop(i, None)  # the records as pass 1 read them, if it kept them
    with fh:
        recs = (
            replay
            if replay is not None
            else records(fh, size, max_record, MAX_PAGE_BYTES, reader, start)
        )
        for rec in recs:
            if end is not None and rec.offset >= end:
                break  # the next range's
            ledger.input += 1
            if isinstance(rec, Lost):
                reject = "not_a_warc" if rec.reason == "warc_truncated" and not seen else rec.reason
                ledger.reject(reject)
                continue
            seen += 1
            why = _no_page(rec)
            if why:  # settled from typed fields alone: no unit boundary needed (most records)
                ledger.drop(STEP, why)
                continue
            label = f"{path}:{rec.offset} {rec.target}"
            doc = boundary.call(label, _record, rec, path, store, checker, ledger, opts)
            if doc is not None:
                yield doc


def _record(
    rec: Rec,
    path: Path,
    store: WarcImageIndex,
    checker: ImageChecker,
    ledger: Ledger,
    opts: IngestOptions,
) -> Document | None:
    """Count one page's record (`_no_page` said it is one); return its Document if it has
    content."""
    body = rec.payload
    if rec.truncated:
        ledger.reject("page_too_large")
        return None
    try:
        page = extract_page(body, _charset(rec.content_type))
    except PageError as e:
        ledger.reject(e.reason)
        return None
    url = rec.target
    return page_document(
        page,
        PageSource(url=url),
        ledger,
        opts,
        checker,
        "warc",
        doc_id("warc", f"{url} {path.name}:{rec.offset}"),
        store=store,
        extra_meta={"warc": path.name, "warc_offset": rec.offset},
    )
