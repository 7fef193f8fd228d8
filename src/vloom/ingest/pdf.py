"""PDF -> one Document per file: text blocks and embedded images, page by page, in reading order.

PyMuPDF's `page.get_text("dict")` gives text blocks and image blocks (with the image bytes, inline
images included) and their bounding boxes. Reading order within a page is a recursive XY-cut:
split the page at its widest empty band (a horizontal band splits rows, a vertical one columns),
so two-column papers read column by column and a figure lands between the paragraphs it stands
between. The unit is MuPDF's block, split where its lines fall into side-by-side columns of real
text (MuPDF may join lines of two columns that share baselines; a bullet or a list number beside
its item is not a column). What it costs: boxes that overlap (text over a background image) have
no band to split at and fall back to top-to-bottom, left-to-right order; a table reads column by
column. A block's wrapped lines are joined into one line (hyphenated words rejoined; list items
and monospaced blocks keep their line breaks), and so is a sentence that a page or column break
cut in two. Consecutive text blocks, across pages too, are joined into one text item with blank
lines; each image is its own item.

Running headers and footers (a line in the top or bottom margin that recurs, digits aside, on
at least 3 pages: "Chapter 2 · Setup", page numbers) are removed and counted.

Policy per image: images smaller than `min_image_side` (pixels, and points as drawn) are treated
as decoration and skipped; bytes Pillow cannot take (CMYK, JPX, JBIG2, soft masks) are converted
through a PyMuPDF Pixmap to PNG/JPEG; every kept image passes `vloom.media.check_image`; an
image met again in the same PDF (a logo on every page) is kept once ("repeated"). MuPDF
decodes every image it extracts, so a page whose resources hold an image of more than
`vloom.media.MAX_IMAGE_PIXELS` pixels (read from its dictionary, nothing decoded) gives only its
text: the bomb is counted "decompression_bomb", the page's other images "page_with_bomb".
A page with no text layer whose images cover at least half of it is a scanned page: counted,
its scan not kept. A PDF with only such pages is dropped "scanned_no_text". An image covering
half the page with text drawn over it (a scan under its OCR layer, a page background) is not
kept either ("behind_text"): the text is.

Options (opts.extra): "min_image_side" (default 32), "strip_running_headers" (default True).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymupdf

from vloom.doc import Document
from vloom.ingest.base import IngestError, IngestOptions
from vloom.ingest.run import record_image
from vloom.ledger import Ledger
from vloom.media import MAX_IMAGE_PIXELS, ImageError, check_image

STEP = "pdf"
MIN_IMAGE_SIDE = 32
SCANNED_COVERAGE = 0.5  # share of the page covered by images on a page without text
_MAX_XY_BOXES = 2000  # beyond this many blocks on one page, plain top-to-bottom order
MARGIN = 0.08  # top and bottom share of the page where running headers and footers live
MIN_REPEATS = 3  # pages a margin line must recur on to count as a running header/footer
_DIGITS = re.compile(r"\d+")
_ROMAN = re.compile(r"[ivxlcdm]+")
_MONOSPACED = 8  # PyMuPDF span flag bit
# a line that starts a list item: a bullet or dash, "3." / "(3)" / "b)"
_LIST_ITEM = re.compile(
    r"^(?:[\u2022\u00b7\u2023\u25e6\u25aa\u25cf\u25a0*\-\u2013\u2014]|\(?\d{1,3}[.)]|\(?[a-z][.)])(?:\s|$)"
)


@dataclass(slots=True)
class _Block:
    bbox: tuple[float, float, float, float]
    text: str | None = None
    image: dict[str, Any] | None = None  # the PyMuPDF image block
    mono: bool = False  # all monospaced: code or terminal output


def ingest_pdf(inputs: list[Path], ledger: Ledger, opts: IngestOptions) -> Iterator[Document]:
    """The `pdf` source: one Document per PDF file (directories are walked for *.pdf)."""
    min_side = int(opts.extra.get("min_image_side", MIN_IMAGE_SIDE))
    stats = ledger.extra.setdefault(
        "pdf", {"pages": 0, "scanned_pages": 0, "page_errors": 0, "images_skipped": {}}
    )
    for path in _walk(inputs):
        ledger.input += 1
        try:
            data = path.read_bytes()
        except OSError:
            ledger.reject("unreadable")
            continue
        try:
            pdf = pymupdf.open(stream=data, filetype="pdf")
        except Exception:  # FileDataError, EmptyFileError, or MuPDF's own RuntimeErrors
            ledger.reject("pdf_corrupt")
            continue
        with pdf:
            if pdf.needs_pass:
                ledger.reject("pdf_encrypted")
                continue
            if pdf.page_count == 0:
                ledger.reject("pdf_corrupt")
                continue
            digest = hashlib.sha256(data).hexdigest()[:16]
            doc = _read(pdf, path, f"pdf-{digest}", ledger, opts, min_side, stats)
        if isinstance(doc, str):
            if doc == "pdf_corrupt":
                ledger.reject(doc)
            else:
                ledger.drop(STEP, doc)
            continue
        yield doc


def _walk(inputs: list[Path]) -> Iterator[Path]:
    for p in inputs:
        p = Path(p)
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.suffix.lower() == ".pdf" and f.is_file())
        elif p.is_file():
            yield p
        else:
            raise IngestError(f"{p}: no such file or directory")


def _read(
    pdf: pymupdf.Document,
    path: Path,
    doc_id: str,
    ledger: Ledger,
    opts: IngestOptions,
    min_side: int,
    stats: dict[str, Any],
) -> Document | str:
    """The Document, or the reason it is not one ("pdf_corrupt", "scanned_no_text", "no_content")."""
    items: list[str | bytes] = []
    images_meta: list[dict[str, Any]] = []
    skipped: dict[str, int] = {}
    scanned: list[int] = []
    text_buf: list[str] = []  # text blocks since the last image
    last_mono = False
    seen: set[bytes] = set()  # digests of the images met so far in this PDF

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1
        stats["images_skipped"][reason] = stats["images_skipped"].get(reason, 0) + 1

    pages: list[tuple[int, pymupdf.Rect, list[_Block]]] = []
    for pno in range(pdf.page_count):
        try:
            page = pdf[pno]
            # MuPDF decodes every image it extracts: a page holding a decompression bomb gives
            # only its text (image sizes come from the dictionaries, nothing is decoded)
            sizes = [(x[2], x[3]) for x in page.get_images(full=True)]
            bombs = sum(w * h > MAX_IMAGE_PIXELS for w, h in sizes)
            pages.append((pno, page.rect, _blocks(page, images=not bombs)))
        except Exception:  # a broken page object or content stream: the other pages still count
            continue
        for _ in range(bombs):
            record_image(ledger, "pdf", "decompression_bomb")
        for _ in range(len(sizes) - bombs if bombs else 0):
            skip("page_with_bomb")
    page_errors = pdf.page_count - len(pages)
    stats["pages"] += len(pages)
    stats["page_errors"] += page_errors
    if not pages:
        return "pdf_corrupt"
    running = _running_lines(pages) if opts.extra.get("strip_running_headers", True) else set()
    removed = 0
    for pno, rect, blocks in pages:
        texts = [b for b in blocks if b.text is not None]
        if not texts and _coverage(blocks, rect) >= SCANNED_COVERAGE * (abs(rect) or 1.0):
            scanned.append(pno + 1)
            for _ in blocks:
                skip("scanned_page")
            continue
        behind = _behind_text(blocks, rect)
        for b in (blocks[i] for i in reading_order([b.bbox for b in blocks])):
            if b.image is not None and id(b) in behind:
                skip("behind_text")  # a page scan under its OCR layer, or a page background
                continue
            if b.text is not None:
                if running and _in_margin(b, rect) and _norm(b.text) in running:
                    removed += 1
                elif text_buf and not (b.mono or last_mono) and _continues(text_buf[-1], b.text):
                    text_buf[-1] = _join_split(text_buf[-1], b.text)
                else:
                    text_buf.append(b.text)
                last_mono = b.mono
                continue
            data = _keep_image(b, min_side, opts.max_image_bytes, ledger, skip, seen)
            if data is None:
                continue
            if text_buf:
                items.append("\n\n".join(text_buf))
                text_buf = []
            items.append(data)
            images_meta.append({"page": pno + 1, "bbox": [round(v, 1) for v in b.bbox]})
    if text_buf:
        items.append("\n\n".join(text_buf))
    stats["scanned_pages"] += len(scanned)
    stats["running_lines_removed"] = stats.get("running_lines_removed", 0) + removed
    n_chars = sum(len(it) for it in items if isinstance(it, str))
    if n_chars == 0 and scanned:
        return "scanned_no_text"
    if n_chars < max(opts.min_text_chars, 1):
        return "no_content"
    meta = pdf.metadata or {}
    return Document.from_items(
        doc_id,
        items,
        source="pdf",
        url=str(path),
        language=opts.language or _language(pdf),
        metadata={
            "title": (meta.get("title") or "").strip() or path.stem,
            "author": (meta.get("author") or "").strip(),
            "page_count": pdf.page_count,
            "images": images_meta,
            "scanned_pages": scanned,
            "images_skipped": skipped,
            "running_lines_removed": removed,
            "page_errors": page_errors,
        },
    )


def _norm(text: str) -> str:
    """A margin line with its numbers blanked: "Page 3 of 9" and "Page 4 of 9" are one line,
    and so are the roman page numbers of front matter ("iv", "v")."""
    text = " ".join(text.lower().split())
    return "#" if _ROMAN.fullmatch(text) else _DIGITS.sub("#", text)


def _in_margin(b: _Block, rect: pymupdf.Rect) -> bool:
    band = MARGIN * rect.height
    return b.bbox[3] <= rect.y0 + band or b.bbox[1] >= rect.y1 - band


def _running_lines(pages: list[tuple[int, pymupdf.Rect, list[_Block]]]) -> set[str]:
    """Normalised margin texts that recur on at least MIN_REPEATS pages."""
    seen: dict[str, int] = {}
    for _, rect, blocks in pages:
        for key in {_norm(b.text) for b in blocks if b.text is not None and _in_margin(b, rect)}:
            seen[key] = seen.get(key, 0) + 1
    return {k for k, n in seen.items() if n >= MIN_REPEATS}


def _blocks(page: pymupdf.Page, images: bool = True) -> list[_Block]:
    flags = pymupdf.TEXTFLAGS_DICT
    if not images:
        flags &= ~pymupdf.TEXT_PRESERVE_IMAGES
    out: list[_Block] = []
    for b in page.get_text("dict", flags=flags, sort=False)["blocks"]:
        if b["type"] == 1:
            out.append(_Block(tuple(b["bbox"]), image=b))  # type: ignore[arg-type]
            continue
        lines = []
        spans = [s for ln in b.get("lines", ()) for s in ln["spans"] if s["text"].strip()]
        mono = bool(spans) and all(s["flags"] & _MONOSPACED for s in spans)
        for ln in b.get("lines", ()):
            text = "".join(s["text"] for s in ln["spans"]).strip()
            if text:
                lines.append((tuple(ln["bbox"]), text))
        for part in _columns(lines):
            x0 = min(bb[0] for bb, _ in part)
            y0 = min(bb[1] for bb, _ in part)
            x1 = max(bb[2] for bb, _ in part)
            y1 = max(bb[3] for bb, _ in part)
            text = _reflow([t for _, t in part], mono)
            out.append(_Block((x0, y0, x1, y1), text=text, mono=mono))
    return out


def _continues(prev: str, nxt: str) -> bool:
    """Whether `nxt` carries on the sentence `prev` broke off (at a page break, a column end):
    `prev` ends mid-sentence (a letter, a comma, a hyphen) and `nxt` starts in lower case."""
    return bool(prev) and (prev[-1].isalpha() or prev[-1] in ",-") and nxt[:1].islower()


def _join_split(prev: str, nxt: str) -> str:
    if len(prev) > 1 and prev[-1] == "-" and prev[-2].isalpha():
        return prev[:-1] + nxt
    return prev + " " + nxt


def _reflow(lines: list[str], mono: bool) -> str:
    """The wrapped lines of a paragraph as one line, as the text was written (and as line-based
    quality filters expect); a word hyphenated across lines is joined. List items keep their own
    lines; monospaced blocks (code, terminal output) keep every line break."""
    if mono:
        return "\n".join(lines)
    out = lines[0]
    for ln in lines[1:]:
        if _LIST_ITEM.match(ln):
            out += "\n" + ln
        else:
            out = _join_split(out, ln) if ln[:1].islower() else out + " " + ln
    return out


def _columns(
    lines: list[tuple[tuple[float, ...], str]],
) -> list[list[tuple[tuple[float, ...], str]]]:
    """The lines of one block, split into side-by-side columns when they form columns of text.

    Lines are grouped by overlapping x-ranges; the split is kept only when every group holds a
    line wider than three line heights, so a bullet or "1." beside its item stays with it.
    """
    if len(lines) < 2:
        return [lines] if lines else []
    height = sorted(bb[3] - bb[1] for bb, _ in lines)[len(lines) // 2]
    order = sorted(range(len(lines)), key=lambda i: lines[i][0][0])
    groups: list[list[int]] = []
    reach = float("-inf")
    for i in order:
        x0, _, x1, _ = lines[i][0]
        if groups and x0 < reach:
            groups[-1].append(i)
        else:
            groups.append([i])
        reach = max(reach, x1) if len(groups[-1]) > 1 else x1
    wide = all(max(lines[i][0][2] - lines[i][0][0] for i in g) > 3 * height for g in groups)
    if len(groups) == 1 or not wide:
        return [lines]
    return [[lines[i] for i in sorted(g)] for g in groups]


def _behind_text(blocks: list[_Block], rect: pymupdf.Rect) -> set[int]:
    """ids of images covering half the page or more with text drawn over them."""
    page_area = abs(rect) or 1.0
    out = set()
    for b in blocks:
        if b.image is None or abs(pymupdf.Rect(b.bbox) & rect) < SCANNED_COVERAGE * page_area:
            continue
        box = pymupdf.Rect(b.bbox)
        for t in blocks:
            if t.text is not None and box.contains(
                pymupdf.Point((t.bbox[0] + t.bbox[2]) / 2, (t.bbox[1] + t.bbox[3]) / 2)
            ):
                out.add(id(b))
                break
    return out


def _coverage(blocks: list[_Block], rect: pymupdf.Rect) -> float:
    """Area of the page covered by image blocks (overlaps counted once per block, clipped)."""
    total = 0.0
    for b in blocks:
        if b.image is not None:
            total += abs(pymupdf.Rect(b.bbox) & rect)
    return total


def _keep_image(
    b: _Block, min_side: int, max_bytes: int, ledger: Ledger, skip: Any, seen: set[bytes]
) -> bytes | None:
    im = b.image
    assert im is not None
    x0, y0, x1, y1 = b.bbox
    if min(im["width"], im["height"]) < min_side or min(x1 - x0, y1 - y0) < min_side:
        skip("too_small")  # decoration: rules, bullets, icons
        return None
    digest = hashlib.sha1(im["image"]).digest()
    if digest in seen:
        skip("repeated")  # a logo or ornament drawn on every page is kept once
        return None
    seen.add(digest)
    try:
        data = _pillow_bytes(im)
    except Exception:  # MuPDF cannot decode the stream either
        record_image(ledger, "pdf", "undecodable_image")
        return None
    if len(data) > max_bytes:
        record_image(ledger, "pdf", "image_too_large")
        return None
    try:
        check_image(data)
    except ImageError as e:
        record_image(ledger, "pdf", e.reason)
        return None
    record_image(ledger, "pdf", "attached")
    return data


def _pillow_bytes(im: dict[str, Any]) -> bytes:
    """The image as PNG/JPEG bytes Pillow decodes: stored bytes when they already are, else a
    Pixmap conversion (to RGB or gray, soft mask applied as alpha)."""
    data, ext, mask = im["image"], im["ext"], im.get("mask")
    if ext in ("png", "jpeg") and im.get("colorspace") in (1, 3) and not mask:
        return data
    pix = pymupdf.Pixmap(data)
    if pix.colorspace is None or pix.colorspace.n not in (1, 3):
        pix = pymupdf.Pixmap(pymupdf.csRGB, pix)
    if mask:
        if pix.alpha:
            pix = pymupdf.Pixmap(pix, 0)  # drop the old alpha; the soft mask replaces it
        pix = pymupdf.Pixmap(pix, pymupdf.Pixmap(mask))
    return pix.tobytes("jpeg" if ext == "jpeg" and not pix.alpha else "png")


def _language(pdf: pymupdf.Document) -> str:
    """The catalog's /Lang as a primary subtag ("en-US" -> "en"), or "" when absent."""
    try:
        kind, value = pdf.xref_get_key(pdf.pdf_catalog(), "Lang")
    except Exception:
        return ""
    if kind != "string" or not value:
        return ""
    return value.replace("_", "-").split("-")[0].strip().lower()


def reading_order(boxes: list[tuple[float, float, float, float]]) -> list[int]:
    """Indices of `boxes` (x0, y0, x1, y1) in reading order by recursive XY-cut.

    Each region is split at its widest empty band across either axis (ties: the horizontal band,
    i.e. rows before columns); a region with no band is read top-to-bottom, left-to-right.
    Iterative, so a page of thousands of lines cannot exhaust the recursion limit.
    """
    if len(boxes) > _MAX_XY_BOXES:
        return sorted(range(len(boxes)), key=lambda i: (boxes[i][1], boxes[i][0]))
    out: list[int] = []
    stack = [list(range(len(boxes)))]
    while stack:
        idx = stack.pop()
        cut = _widest_gap(boxes, idx) if len(idx) > 1 else None
        if cut is None:
            out.extend(sorted(idx, key=lambda i: (boxes[i][1], boxes[i][0])))
            continue
        axis, pos = cut
        first = [i for i in idx if boxes[i][axis] < pos]
        second = [i for i in idx if boxes[i][axis] >= pos]
        stack.append(second)  # popped after `first`
        stack.append(first)
    return out


def _widest_gap(
    boxes: list[tuple[float, float, float, float]], idx: list[int]
) -> tuple[int, float] | None:
    """(axis, coordinate) of the widest empty band between boxes; axis 1 = y (rows), 0 = x."""
    best: tuple[float, int, float] | None = None
    for axis in (1, 0):
        spans = sorted((boxes[i][axis], boxes[i][axis + 2]) for i in idx)
        reach = spans[0][1]
        for lo, hi in spans[1:]:
            gap = lo - reach
            if gap > 0 and (best is None or gap > best[0]):
                best = (gap, axis, (reach + lo) / 2)
            reach = max(reach, hi)
    return None if best is None else (best[1], best[2])
