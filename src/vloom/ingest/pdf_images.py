"""Images of one PDF for the pdf source: where they are drawn, and their bytes taken once.

Where: MuPDF's image info (bbox and pixel size of every drawing of an image, nothing decoded).
Which: the page's image resources by pixel size; a drawing whose size names exactly one resource
image is that xref (an image's soft mask, of its size, is no candidate: the image is taken by xref
and its mask with it, not both re-read from the page). Bytes are extracted only when the image is kept, so a logo (or a 0.75 MB
photo) drawn on every page is decoded once and skipped by xref on every later page. A drawing
with no single matching xref (an inline image, two resource images of one size) takes its bytes
from MuPDF's page dictionary, for that page only. What it costs: an inline image of the same
pixel size as a resource image of its page is taken for that image, and so is a soft mask drawn on
its own for the image it masks.

Policy per image: smaller than `min_side` (pixels, and points as drawn) is decoration and
skipped; met again in the same PDF (same xref, or same bytes) is kept once ("repeated"); bytes
Pillow cannot take (CMYK, JPX, JBIG2, soft masks) are converted through a PyMuPDF Pixmap to
PNG/JPEG; every kept image passes `vloom.media.check_image`; once the PDF's kept images reach
`max_total` bytes, later images are skipped unextracted ("image_bytes_capped").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pymupdf

from vloom.ingest.pdf_layout import Block, textpage
from vloom.ingest.run import record_image
from vloom.ledger import Ledger
from vloom.media import ImageError, check_image


def placements(page: pymupdf.Page, dl: pymupdf.DisplayList | None = None) -> list[Block]:
    """The page's image drawings as blocks holding {"width", "height", "xref", "index"}.
    `dl`: the page's display list, when the caller reads it for more than images."""
    by_size: dict[tuple[int, int], set[int]] = {}
    listed = page.get_images(full=True)
    masks = {x[1] for x in listed if x[1]}  # an image's soft mask has its size but is not drawn
    for x in listed:
        if x[0] not in masks:
            by_size.setdefault((x[2], x[3]), set()).add(x[0])
    out = []
    flags = pymupdf.TEXTFLAGS_DICT
    tp = page.get_textpage(flags=flags) if dl is None else textpage(page, dl, flags)
    infos = tp.extractIMGINFO()
    for i, info in enumerate(infos):
        xrefs = by_size.get((info["width"], info["height"]), set())
        xref = next(iter(xrefs)) if len(xrefs) == 1 else 0
        im = {"width": info["width"], "height": info["height"], "xref": xref, "index": i}
        out.append(Block(tuple(info["bbox"]), image=im))  # type: ignore[arg-type]
    return out


def page_image_dicts(page: pymupdf.Page) -> list[dict[str, Any]]:
    """MuPDF's image blocks of one page, bytes included, in the order `placements` numbers them."""
    blocks = page.get_text("dict", flags=pymupdf.TEXTFLAGS_DICT, sort=False)["blocks"]
    return [b for b in blocks if b["type"] == 1]


class PdfImages:
    """The kept images of one PDF: each taken at most once, within a byte budget."""

    def __init__(
        self,
        pdf: pymupdf.Document,
        ledger: Ledger,
        skip: Callable[[str], None],
        min_side: int,
        max_bytes: int,
        max_total: int,
    ) -> None:
        self.pdf, self.ledger, self.skip = pdf, ledger, skip
        self.min_side, self.max_bytes, self.max_total = min_side, max_bytes, max_total
        self.seen_xrefs: set[int] = set()
        self.seen_digests: set[bytes] = set()
        self.total = 0
        self.capped = False

    def take(self, b: Block, inline: Callable[[int], dict[str, Any]]) -> bytes | None:
        """The image's bytes to keep, or None after counting why not. `inline(index)` gives
        the page's MuPDF image block for a drawing without an xref."""
        im = b.image
        assert im is not None
        x0, y0, x1, y1 = b.bbox
        if min(im["width"], im["height"]) < self.min_side or min(x1 - x0, y1 - y0) < self.min_side:
            self.skip("too_small")  # decoration: rules, bullets, icons
            return None
        xref = im["xref"]
        if xref and xref in self.seen_xrefs:
            self.skip("repeated")  # a logo or ornament drawn on every page is kept once
            return None
        if self.capped:
            self.skip("image_bytes_capped")
            return None
        try:
            raw = self._xref_image(xref) if xref else inline(im["index"])
        except Exception:  # MuPDF cannot read the image object
            record_image(self.ledger, "pdf", "undecodable_image")
            return None
        self.seen_xrefs.add(xref)
        digest = hashlib.sha1(raw["image"]).digest()
        if digest in self.seen_digests:
            self.skip("repeated")  # the same bytes under another xref, or inline again
            return None
        self.seen_digests.add(digest)
        return self._convert(raw)

    def _xref_image(self, xref: int) -> dict[str, Any]:
        raw = self.pdf.extract_image(xref)
        if raw.get("smask"):
            raw["mask"] = self.pdf.extract_image(raw["smask"])["image"]
        return raw

    def _convert(self, raw: dict[str, Any]) -> bytes | None:
        try:
            data = _pillow_bytes(raw)
        except Exception:  # MuPDF cannot decode the stream either
            record_image(self.ledger, "pdf", "undecodable_image")
            return None
        if len(data) > self.max_bytes:
            record_image(self.ledger, "pdf", "image_too_large")
            return None
        if self.total + len(data) > self.max_total:
            self.capped = True  # later images are not even extracted
            self.skip("image_bytes_capped")
            return None
        try:
            check_image(data)
        except ImageError as e:
            record_image(self.ledger, "pdf", e.reason)
            return None
        self.total += len(data)
        record_image(self.ledger, "pdf", "attached")
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
