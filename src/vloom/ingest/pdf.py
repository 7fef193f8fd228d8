"""PDF -> one Document per file: text blocks and embedded images, page by page, in reading order.

Layout (reading order by XY-cut, reflow, running headers and footers) is `pdf_layout`; images
(placements, taking each once, conversion for Pillow) are `pdf_images`; a kept image's caption
block (`pdf_captions`) leaves the text for the image's metadata["images"][k]["caption"], as in
HTML ingest (pack puts it back after the image; counted in ledger["pdf"]["captions"]).
Consecutive text blocks, across pages too, are joined into one text item with blank lines; each
image is its own item.

Two passes over the pages, neither holding image bytes: the first reads each page's text blocks
and where its images are drawn (MuPDF's image info; nothing decoded) and counts margin lines;
the second orders each page and extracts an image only when it is kept. So memory is the text
plus the kept images, whatever a PDF repeats on every page. Caps per PDF (opts.extra):
"max_pages" (default 2000; later pages are not read) and "max_pdf_image_bytes" (default 256 MiB
of kept images); a capped PDF is still kept, and counted in ledger["pdf"]["limited"] as
"pdf_pages_capped" / "pdf_image_bytes_capped".

Bombs: MuPDF decodes every image it extracts, so a page whose resources hold an image of more
than `vloom.media.MAX_IMAGE_PIXELS` pixels (read from its dictionary, nothing decoded) gives only
its text: the bomb is counted "decompression_bomb", the page's other images "page_with_bomb".
A page with no text layer whose images cover at least half of it is a scanned page: counted,
its scan not kept. A PDF with only such pages is dropped "scanned_no_text". An image covering
half the page with text drawn over it (a scan under its OCR layer, a page background) is not
kept either ("behind_text"): the text is.

Broken pages: a page MuPDF cannot load or read is left out ("page_unreadable"); a page whose
content stream has syntax errors keeps what MuPDF recovered of it ("content_stream_error").
Each page is a unit of work inside a failure boundary: a page whose reading or placing raises
or runs past opts.unit_timeout is left out ("page_error:<Type>" / "page_timeout"; nothing of it
is kept, though an image it took counts as seen). All these are counted in
ledger["pdf"]["page_errors"] (total) and ["page_error_reasons"], and listed in the document's
metadata ("broken_pages"); the PDF's other pages are kept. A failure outside any page rejects
the file "file_error:<Type>" (ingest.base.UnitBoundary, without a time budget: a PDF of a
thousand pages may rightly take longer than one page) and the next PDF is read.

A PDF found by walking a directory must lie inside it once symlinks are followed
("outside_root"); every PDF must be a regular file (a FIFO is "unreadable", never opened).

Options (opts.extra): "min_image_side" (default 32), "strip_running_headers" (default True),
"max_pages", "max_pdf_image_bytes".
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymupdf

from vloom.doc import Document
from vloom.guard import UnitTimeout, time_budget
from vloom.ingest.base import (
    UNIT_HOOKS,
    CorruptGzip,
    IngestError,
    IngestOptions,
    UnitBoundary,
    inside_root,
    primary_language,
    read_input_file,
    symlinked_dirs_note,
)
from vloom.ingest.pdf_captions import find_captions
from vloom.ingest.pdf_images import PdfImages, page_image_dicts, placements
from vloom.ingest.pdf_layout import (
    SCANNED_COVERAGE,
    Block,
    behind_text,
    continues,
    coverage,
    join_split,
    margin_keys,
    reading_order,
    running_blocks,
    running_lines,
    text_blocks,
)
from vloom.ingest.run import record_image
from vloom.ledger import Ledger
from vloom.media import MAX_IMAGE_PIXELS

__all__ = ["ingest_pdf", "reading_order"]

STEP = "pdf"
PDF_SUFFIXES = (".pdf", ".pdf.gz")  # Debian gzips its larger manuals
MIN_IMAGE_SIDE = 32
MAX_PAGES = 2000
MAX_PDF_IMAGE_BYTES = 256 * 1024 * 1024
# MuPDF's warnings while it reads a page that mean the page is not what its author drew
_BROKEN_PAGE = re.compile(r"syntax error|content stream|page may not be correct")


@dataclass(slots=True)
class _Page:
    pno: int
    rect: pymupdf.Rect
    blocks: list[Block]
    error: str = ""  # why the page is not whole, if it is not


@dataclass
class _Stats:
    """Counts of one PDF (merged into ledger["pdf"])."""

    skipped: dict[str, int] = field(default_factory=dict)  # image reasons
    errors: Counter = field(default_factory=Counter)  # page error reasons
    limited: list[str] = field(default_factory=list)


def ingest_pdf(inputs: list[Path], ledger: Ledger, opts: IngestOptions) -> Iterator[Document]:
    """The `pdf` source: one Document per PDF file (directories are walked for *.pdf and
    *.pdf.gz)."""
    stats = ledger.extra.setdefault(
        "pdf", {"pages": 0, "scanned_pages": 0, "page_errors": 0, "images_skipped": {}}
    )
    # the file's boundary catches exceptions only: the time budget is per page (a PDF of a
    # thousand pages may rightly take longer than one page may)
    boundary = UnitBoundary(ledger, dataclasses.replace(opts, unit_timeout=0), "file")
    for root, path in _walk(inputs):
        ledger.input += 1
        if root is not None and not inside_root(path, root):
            ledger.reject("outside_root")  # a symlink out of the input directory
            continue
        doc = boundary.call(str(path), _one_pdf, path, ledger, opts, stats)
        if doc is not None:
            yield doc


def _one_pdf(
    path: Path, ledger: Ledger, opts: IngestOptions, stats: dict[str, Any]
) -> Document | None:
    """The PDF's Document, or None after counting why not."""
    try:
        data = read_input_file(path)
    except CorruptGzip:
        ledger.reject("gzip_corrupt")
        return None
    except ValueError:
        ledger.reject("file_too_large")  # a *.pdf.gz inflating past MAX_GUNZIP_BYTES
        return None
    except OSError:
        ledger.reject("unreadable")  # also a FIFO or device named *.pdf: never opened
        return None
    try:
        pdf = pymupdf.open(stream=data, filetype="pdf")
    except Exception:  # FileDataError, EmptyFileError, or MuPDF's own RuntimeErrors
        ledger.reject("pdf_corrupt")
        return None
    with pdf:
        if pdf.needs_pass:
            ledger.reject("pdf_encrypted")
            return None
        if pdf.page_count == 0:
            ledger.reject("pdf_corrupt")
            return None
        digest = hashlib.sha256(data).hexdigest()[:16]
        doc = _read(pdf, path, f"pdf-{digest}", ledger, opts, stats)
    if isinstance(doc, str):
        if doc == "pdf_corrupt":
            ledger.reject(doc)
        else:
            ledger.drop(STEP, doc)
        return None
    return doc


def _walk(inputs: list[Path]) -> Iterator[tuple[Path | None, Path]]:
    """(root, file): files found under a directory carry it as their root; named files None.
    Inputs that hold no PDF at all are an error, as for html: not a run of nothing."""
    n = 0
    for p in inputs:
        p = Path(p)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.name.lower().endswith(PDF_SUFFIXES) and not f.is_dir():
                    n += 1
                    yield p, f
        elif p.exists():
            n += 1
            yield None, p
        else:
            raise IngestError(f"{p}: no such file or directory")
    if n == 0:
        names = ", ".join(str(p) for p in inputs)
        found = " / ".join(PDF_SUFFIXES)
        raise IngestError(f"{names}: no {found} files found{symlinked_dirs_note(inputs)}")


def _read(
    pdf: pymupdf.Document,
    path: Path,
    doc_id: str,
    ledger: Ledger,
    opts: IngestOptions,
    stats: dict[str, Any],
) -> Document | str:
    """The Document, or the reason it is not one ("pdf_corrupt", "scanned_no_text", "no_content")."""
    st = _Stats()
    max_pages = int(opts.extra.get("max_pages", MAX_PAGES))
    if pdf.page_count > max_pages:
        st.limited.append("pdf_pages_capped")
        stats["pages_not_read"] = stats.get("pages_not_read", 0) + pdf.page_count - max_pages

    def skip(reason: str) -> None:
        st.skipped[reason] = st.skipped.get(reason, 0) + 1
        stats["images_skipped"][reason] = stats["images_skipped"].get(reason, 0) + 1

    budget = opts.unit_timeout if opts.unit_timeout and opts.unit_timeout > 0 else None
    label = str(path)
    pages = _scan(pdf, min(pdf.page_count, max_pages), ledger, skip, st, budget, label)
    stats["pages"] += len(pages)
    if not pages:
        _count_errors(stats, st)
        return "pdf_corrupt"
    images = PdfImages(
        pdf,
        ledger,
        skip,
        int(opts.extra.get("min_image_side", MIN_IMAGE_SIDE)),
        opts.max_image_bytes,
        int(opts.extra.get("max_pdf_image_bytes", MAX_PDF_IMAGE_BYTES)),
    )
    strip = opts.extra.get("strip_running_headers", True)
    items, images_meta, scanned, removed = _assemble(
        pdf, pages, images, skip, strip, st, budget, label
    )
    _count_errors(stats, st)
    if images.capped:
        st.limited.append("pdf_image_bytes_capped")
    limited = stats.setdefault("limited", {})
    for reason in st.limited:
        limited[reason] = limited.get(reason, 0) + 1
    stats["scanned_pages"] += len(scanned)
    stats["running_lines_removed"] = stats.get("running_lines_removed", 0) + removed
    stats["captions"] = stats.get("captions", 0) + sum(bool(m["caption"]) for m in images_meta)
    n_chars = sum(len(it) for it in items if isinstance(it, str))
    if n_chars == 0 and scanned:
        return "scanned_no_text"
    if n_chars < max(opts.min_text_chars, 1):
        return "no_content"
    meta = pdf.metadata or {}
    metadata = {
        "title": (meta.get("title") or "").strip() or path.stem,
        "author": (meta.get("author") or "").strip(),
        "page_count": pdf.page_count,
        "images": images_meta,
        "scanned_pages": scanned,
        "images_skipped": st.skipped,
        "running_lines_removed": removed,
        "page_errors": sum(st.errors.values()),
    }
    broken = [p.pno + 1 for p in pages if p.error]
    if broken or len(pages) < min(pdf.page_count, max_pages):
        read = {p.pno for p in pages}
        missing = [n + 1 for n in range(min(pdf.page_count, max_pages)) if n not in read]
        metadata["broken_pages"] = sorted(broken + missing)
    if st.limited:
        metadata["limited"] = st.limited
    return Document.from_items(
        doc_id,
        items,
        source="pdf",
        url=str(path),
        language=opts.language or _language(pdf),
        metadata=metadata,
    )


def _count_errors(stats: dict[str, Any], st: _Stats) -> None:
    stats["page_errors"] += sum(st.errors.values())
    reasons = stats.setdefault("page_error_reasons", {})
    for r, n in st.errors.items():
        reasons[r] = reasons.get(r, 0) + n


def _scan(
    pdf: pymupdf.Document,
    n_pages: int,
    ledger: Ledger,
    skip: Any,
    st: _Stats,
    budget: float | None,
    label: str,
) -> list[_Page]:
    """Pass 1: every readable page's text blocks and image placements (no image bytes)."""
    pages: list[_Page] = []
    for pno in range(n_pages):
        pymupdf.TOOLS.reset_mupdf_warnings()
        try:
            page = pdf[pno]
        except Exception:  # a broken page object: the other pages still count
            st.errors["page_unreadable"] += 1
            continue
        got, reason = _page_unit(budget, f"{label}#page={pno + 1}", _read_page, page)
        if got is None:
            st.errors[reason] += 1  # page_error:<Type> | page_timeout
            continue
        sizes, bombs, blocks, rect = got
        error = "content_stream_error" if _BROKEN_PAGE.search(_warnings()) else ""
        if error:
            st.errors[error] += 1
        pages.append(_Page(pno, rect, blocks, error))
        for _ in range(bombs):
            record_image(ledger, "pdf", "decompression_bomb")
        for _ in range(len(sizes) - bombs if bombs else 0):
            skip("page_with_bomb")
    return pages


def _read_page(page: pymupdf.Page) -> tuple[list[tuple[int, int]], int, list[Block], Any]:
    # MuPDF decodes every image it extracts: a page holding a decompression bomb gives only
    # its text (image sizes come from the dictionaries, nothing is decoded)
    sizes = [(x[2], x[3]) for x in page.get_images(full=True)]
    bombs = sum(w * h > MAX_IMAGE_PIXELS for w, h in sizes)
    return sizes, bombs, text_and_images(page, images=not bombs), page.rect


def _page_unit(
    budget: float | None, label: str, fn: Callable[..., Any], *args: Any
) -> tuple[Any, str]:
    """fn(*args) as one page's unit of work: (its result, "") or (None, "page_error:<Type>" |
    "page_timeout") when it raised or ran past `budget` seconds. The PDF goes on without it."""
    try:
        with time_budget(budget):
            for hook in UNIT_HOOKS:
                hook("page", label)
            return fn(*args), ""
    except UnitTimeout:
        return None, "page_timeout"
    except Exception as e:  # noqa: BLE001 - any failure inside one page
        return None, f"page_error:{type(e).__name__}"


def text_and_images(page: pymupdf.Page, images: bool = True) -> list[Block]:
    """The page's text blocks and (unless `images` is off) its image placements.

    Most pages draw no image: their content is interpreted once, into a text page that keeps
    image blocks; with none in it, it is the text page MuPDF makes without them, and the text
    is read from it. A page that draws images is interpreted once more, into a display list
    its text page and its image-info page are both built from (image blocks split the text
    blocks around them, so the text is read from a page without them)."""
    if not images:
        return text_blocks(page)
    tp = page.get_textpage(flags=pymupdf.TEXTFLAGS_DICT)
    if not tp.extractIMGINFO():
        return text_blocks(page, tp=tp)
    dl = page.get_displaylist()
    return text_blocks(page, dl) + placements(page, dl)


def _warnings() -> str:
    try:
        return pymupdf.TOOLS.mupdf_warnings() or ""
    except Exception:
        return ""


@dataclass
class _Out:
    """What pass 2 has placed so far; a page that fails is rolled back to its mark."""

    items: list[str | bytes] = field(default_factory=list)
    images_meta: list[dict[str, Any]] = field(default_factory=list)
    scanned: list[int] = field(default_factory=list)
    text_buf: list[str] = field(default_factory=list)  # text blocks since the last image
    last_mono: bool = False
    removed: int = 0

    def mark(self) -> tuple:
        n = (len(self.items), len(self.images_meta), len(self.scanned))
        return n, list(self.text_buf), self.last_mono, self.removed

    def undo(self, mark: tuple) -> None:
        (ni, nm, ns), self.text_buf, self.last_mono, self.removed = mark
        del self.items[ni:], self.images_meta[nm:], self.scanned[ns:]


def _assemble(
    pdf: pymupdf.Document,
    pages: list[_Page],
    images: PdfImages,
    skip: Any,
    strip: bool,
    st: _Stats,
    budget: float | None,
    label: str,
) -> tuple[list[str | bytes], list[dict[str, Any]], list[int], int]:
    """Pass 2: (items, images metadata, scanned page numbers, running lines removed)."""
    running: set[str] = set()
    if strip:
        counts: Counter = Counter()
        for p in pages:
            counts.update(margin_keys(p.blocks, p.rect))
        running = running_lines(counts)
    out = _Out()
    led = images.ledger
    for p in pages:
        mark, tally = out.mark(), copy.deepcopy(led.extra.get("images"))
        _, reason = _page_unit(
            budget, f"{label}#page={p.pno + 1}", _place, pdf, p, out, images, skip, running
        )
        if reason:
            out.undo(mark)  # nothing of the failed page is kept (its images may count as seen)
            if tally is None:
                led.extra.pop("images", None)
            else:
                led.extra["images"] = tally  # nor counted as attached
            st.errors[reason] += 1
            p.error = p.error or reason
    if out.text_buf:
        out.items.append("\n\n".join(out.text_buf))
    return out.items, out.images_meta, out.scanned, out.removed


def _place(
    pdf: pymupdf.Document,
    p: _Page,
    out: _Out,
    images: PdfImages,
    skip: Any,
    running: set[str],
) -> None:
    """One page's blocks in reading order onto `out`."""
    blocks, rect = p.blocks, p.rect
    p.blocks = []  # drop each page's blocks once it is placed
    texts = [b for b in blocks if b.text is not None]
    if not texts and coverage(blocks, rect) >= SCANNED_COVERAGE * (abs(rect) or 1.0):
        out.scanned.append(p.pno + 1)
        for _ in blocks:
            skip("scanned_page")
        return
    behind = behind_text(blocks, rect)
    inline = _InlineImages(pdf, p.pno)
    ordered = [blocks[i] for i in reading_order([b.bbox for b in blocks])]
    # images first (in reading order, as before: which of two equal images is kept does not
    # change), so a caption goes to its image's field only when the image is kept
    taken: dict[int, bytes] = {}
    for b in ordered:
        if b.image is None:
            continue
        if id(b) in behind:
            skip("behind_text")  # a page scan under its OCR layer, or a page background
        elif (data := images.take(b, inline)) is not None:
            taken[id(b)] = data
    running_ids = {id(b) for b in running_blocks(blocks, rect, running)} if running else set()
    captions = (
        find_captions(
            [b for b in ordered if id(b) in taken],
            [b for b in blocks if b.text is not None and id(b) not in running_ids],
        )
        if taken
        else {}
    )
    caption_ids = {id(c) for c in captions.values()}
    for b in ordered:
        if b.text is not None:
            if id(b) in running_ids:
                out.removed += 1
            elif id(b) in caption_ids:
                continue  # in its image's caption field
            elif (
                out.text_buf
                and not (b.mono or out.last_mono)
                and continues(out.text_buf[-1], b.text)
            ):
                out.text_buf[-1] = join_split(out.text_buf[-1], b.text)
            else:
                out.text_buf.append(b.text)
            out.last_mono = b.mono
            continue
        data = taken.get(id(b))
        if data is None:
            continue
        if out.text_buf:
            out.items.append("\n\n".join(out.text_buf))
            out.text_buf = []
        out.items.append(data)
        cap = captions.get(id(b))
        out.images_meta.append(
            {
                "page": p.pno + 1,
                "bbox": [round(v, 1) for v in b.bbox],
                "caption": " ".join(cap.text.split()) if cap is not None and cap.text else "",
            }
        )


class _InlineImages:
    """MuPDF's image blocks of one page, read on first need (drawings without an xref)."""

    def __init__(self, pdf: pymupdf.Document, pno: int) -> None:
        self.pdf, self.pno = pdf, pno
        self.blocks: list[dict[str, Any]] | None = None

    def __call__(self, index: int) -> dict[str, Any]:
        if self.blocks is None:
            self.blocks = page_image_dicts(self.pdf[self.pno])
        return self.blocks[index]


def _language(pdf: pymupdf.Document) -> str:
    """The catalog's /Lang as a primary subtag ("en-US" -> "en"), or "" when absent or no
    language (see primary_language)."""
    try:
        kind, value = pdf.xref_get_key(pdf.pdf_catalog(), "Lang")
    except Exception:
        return ""
    if kind != "string" or not value:
        return ""
    return primary_language(value)
