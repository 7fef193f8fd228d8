"""Images of one PDF for the pdf source: where they are drawn, and their bytes taken once.

Where: MuPDF's image info (bbox and pixel size of every drawing of an image, nothing decoded).
Which: the page's image resources by pixel size; a drawing whose size names exactly one resource
image is that xref (an image's soft mask, of its size, is no candidate: the image is taken by
xref and its mask with it, not both re-read from the page). Bytes are taken only when the image
is kept, so a logo (or a 0.75 MB photo) drawn on every page is read once and skipped by xref on
every later page. A drawing with no single matching xref (an inline image, two resource images
of one size) takes its bytes from MuPDF's page dictionary, for that page only. What it costs: an
inline image of the same pixel size as a resource image of its page is taken for that image, and
so is a soft mask drawn on its own for the image it masks.

How (cheapest first): a Flate image of gray, RGB or indexed samples becomes a PNG made from its
stored stream (`stored_png`: no pixel decoded, nothing encoded when the stream carries PNG
predictors); an image with a soft mask is decoded by MuPDF with its mask and encoded once, as
RGBA PNG; anything else is MuPDF's `extract_image`, kept as it comes when Pillow takes it (JPEG,
PNG) and otherwise (CMYK, JPX, JBIG2) converted through a Pixmap to PNG/JPEG. MuPDF's
`extract_image` decodes a Flate image and encodes it as PNG again: for the 1-bit scans of a
music essay that is half a second an image, most of what a plain PyMuPDF loop spends.

Policy per image: smaller than `min_side` (pixels, and points as drawn) is decoration and
skipped, before any byte is read; met again in the same PDF (same xref, or the same bytes) is
kept once ("repeated"); an xref MuPDF cannot read is "undecodable_image" at each drawing, read
once; every kept image passes `vloom.media.check_image`; once the PDF's kept images reach
`max_total` bytes, later images are skipped unextracted ("image_bytes_capped").
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pymupdf

from vloom.ingest.pdf_layout import Block, textpage
from vloom.ingest.run import record_image
from vloom.ledger import Ledger
from vloom.media import ImageError, check_image

try:  # several times faster than zlib at the same level (a dependency of vloom.media)
    from zlib_ng import zlib_ng as _zlib
except ImportError:  # pragma: no cover
    _zlib = zlib  # type: ignore[assignment]


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
        self.broken: set[int] = set()  # xrefs MuPDF could not read or decode
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
        if xref in self.broken:
            record_image(self.ledger, "pdf", "undecodable_image")  # counted, not decoded again
            return None
        try:
            data, checked = (
                self._xref_bytes(xref) if xref else (_pillow_bytes(inline(im["index"])), False)
            )
        except Exception:  # MuPDF cannot read or decode the image
            if xref:
                self.broken.add(xref)
            record_image(self.ledger, "pdf", "undecodable_image")
            return None
        self.seen_xrefs.add(xref)
        digest = hashlib.sha1(data).digest()
        if digest in self.seen_digests:
            self.skip("repeated")  # the same image under another xref, or inline again
            return None
        self.seen_digests.add(digest)
        return self._keep(data, checked)

    def _xref_bytes(self, xref: int) -> tuple[bytes, bool]:
        """(the image as bytes Pillow decodes, whether check_image passed them already)."""
        smask = self.pdf.xref_get_key(xref, "SMask")
        if smask[0] == "xref":  # a soft mask, applied as alpha
            return _masked(self.pdf, xref, int(smask[1].split()[0])), False
        data = stored_png(self.pdf, xref)
        if data is not None:
            try:
                check_image(data)
                return data, True
            except ImageError:
                pass  # a stream only MuPDF's repairs read (no zlib header, cut short): decode it
        return _pillow_bytes(self.pdf.extract_image(xref)), False

    def _keep(self, data: bytes, checked: bool) -> bytes | None:
        """`data` when within the byte caps and Pillow decodes it, or None after counting why."""
        if len(data) > self.max_bytes:
            record_image(self.ledger, "pdf", "image_too_large")
            return None
        if self.total + len(data) > self.max_total:
            self.capped = True  # later images are not even extracted
            self.skip("image_bytes_capped")
            return None
        try:
            if not checked:
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
    if mask:
        return _with_alpha(pix, pymupdf.Pixmap(mask))
    if pix.colorspace is None or pix.colorspace.n not in (1, 3):
        pix = pymupdf.Pixmap(pymupdf.csRGB, pix)
    return pix.tobytes("jpeg" if ext == "jpeg" and not pix.alpha else "png")


def _masked(pdf: pymupdf.Document, xref: int, smask: int) -> bytes:
    """An image with its soft mask as alpha, as PNG: both decoded once by MuPDF."""
    return _with_alpha(pymupdf.Pixmap(pdf, xref), pymupdf.Pixmap(pdf, smask))


def _with_alpha(pix: pymupdf.Pixmap, mask: pymupdf.Pixmap) -> bytes:
    """The image (as gray or RGB) with the soft mask as its alpha, as PNG; the samples are stacked
    as they are (MuPDF's own compositing premultiplies them and its PNG divides again, which moves
    the colour of partly transparent pixels by a level or two). Inline and xref images take this
    one way, so the same image drawn both ways has the same bytes (and is kept once)."""
    if pix.colorspace is None or pix.colorspace.n not in (1, 3):
        pix = pymupdf.Pixmap(pymupdf.csRGB, pix)
    if pix.alpha:
        pix = pymupdf.Pixmap(pix, 0)  # drop the old alpha; the soft mask replaces it
    if mask.n != 1 or mask.alpha or (mask.width, mask.height) != (pix.width, pix.height):
        return pymupdf.Pixmap(pix, mask).tobytes("png")  # MuPDF fits or refuses the mask
    w, h, n = pix.width, pix.height, pix.n
    color = np.frombuffer(pix.samples, np.uint8).reshape(h, w, n)
    alpha = np.frombuffer(mask.samples, np.uint8).reshape(h, w, 1)
    return _png_8bit(np.concatenate([color, alpha], axis=2))


def _png_8bit(pixels: np.ndarray) -> bytes:
    """[h, w, 2 or 4] uint8 (gray or RGB, then alpha) as PNG, each row with the Sub filter."""
    h, w, n = pixels.shape
    rows = pixels.reshape(h, w * n)
    out = np.empty((h, w * n + 1), np.uint8)
    out[:, 0] = 1  # Sub: each byte minus the byte one pixel to its left
    out[:, 1 : n + 1] = rows[:, :n]
    np.subtract(rows[:, n:], rows[:, :-n], out=out[:, n + 1 :])
    return _png(w, h, 8, 4 if n == 2 else 6, _zlib.compress(out.tobytes(), 6))


_DEVICE = {"/DeviceGray": 1, "/DeviceRGB": 3}
_INDEXED = re.compile(
    rb"\[\s*/Indexed\s*(/DeviceRGB|/DeviceGray)\s*(\d+)\s*<([0-9A-Fa-f\s]*)>\s*\]"
)


def stored_png(pdf: pymupdf.Document, xref: int) -> bytes | None:
    """The image as a PNG made from its stored Flate stream without decoding its pixels, or None
    where the stream is not plain PNG image data (then MuPDF decodes it).

    A Flate stream with a PNG predictor (Predictor >= 10) is a PNG's image data as it stands:
    it becomes the IDAT chunk. A Flate stream without a predictor is inflated, given PNG's
    filter byte per row and deflated. Gray, RGB and indexed (over gray or RGB) samples of 1-8
    bits; no /Decode, /Mask or /ImageMask (what MuPDF applies in decoding). The pixels are the
    ones MuPDF decodes; the PNG keeps the stream's depth and palette (MuPDF expands to 8 bits,
    RGB for indexed): fewer bytes, and none of the time MuPDF spends encoding its pixmap.
    """

    def key(name: str) -> tuple[str, str]:
        return pdf.xref_get_key(xref, name)

    if key("Filter") != ("name", "/FlateDecode") or any(
        key(k)[0] != "null" for k in ("Decode", "Mask", "ImageMask", "SMask")
    ):
        return None
    w, h, bpc = key("Width"), key("Height"), key("BitsPerComponent")
    if w[0] != "int" or h[0] != "int" or bpc[0] != "int":
        return None
    width, height, depth = int(w[1]), int(h[1]), int(bpc[1])
    if depth not in (1, 2, 4, 8) or width < 1 or height < 1:
        return None
    kind, cs = key("ColorSpace")
    palette = b""
    if kind == "name" and cs in _DEVICE:
        colors = _DEVICE[cs]
        ctype = 0 if colors == 1 else 2
        if colors == 3 and depth != 8:
            return None  # PNG holds RGB at 8 or 16 bits only
    else:
        text = pdf.xref_object(int(cs.split()[0]), compressed=True) if kind == "xref" else cs
        m = _INDEXED.fullmatch(text.encode().strip())
        if kind not in ("xref", "array") or m is None:
            return None
        base, n = (3 if m[1] == b"/DeviceRGB" else 1), int(m[2]) + 1
        try:
            lut = bytes.fromhex(m[3].decode())
        except ValueError:  # an odd number of hex digits: MuPDF's reading of it
            return None
        if n > 256 or n > 1 << depth or len(lut) < n * base:
            return None
        lut = lut[: n * base] + lut[(n - 1) * base : n * base] * ((1 << depth) - n)
        palette = lut if base == 3 else bytes(v for v in lut for _ in range(3))  # MuPDF clamps
        colors, ctype = 1, 3
    row = (width * colors * depth + 7) // 8
    predictor = key("DecodeParms/Predictor")
    raw = pdf.xref_stream_raw(xref)
    if predictor[0] == "int" and int(predictor[1]) >= 10:
        parms = [key(f"DecodeParms/{k}") for k in ("Colors", "BitsPerComponent", "Columns")]
        got = [int(v) if t == "int" else d for (t, v), d in zip(parms, (1, 8, 1), strict=True)]
        if got != [colors, depth, width]:
            return None
        idat = raw
    elif predictor[0] == "null" or predictor == ("int", "1"):
        z = _zlib.decompressobj()
        try:
            samples = z.decompress(raw, row * height)
        except _zlib.error:
            return None
        if len(samples) < row * height:
            return None
        rows = np.zeros((height, row + 1), np.uint8)  # filter byte 0 (None) before each row
        rows[:, 1:] = np.frombuffer(samples, np.uint8).reshape(height, row)
        idat = _zlib.compress(rows.tobytes(), 6)
    else:
        return None
    return _png(width, height, depth, ctype, idat, palette)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png(
    width: int, height: int, depth: int, ctype: int, idat: bytes, palette: bytes = b""
) -> bytes:
    """A PNG of one IDAT chunk (zlib data of filtered rows), not interlaced."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, ctype, 0, 0, 0)
    chunks = [(b"IHDR", ihdr)] + ([(b"PLTE", palette)] if palette else []) + [(b"IDAT", idat)]
    return _PNG_SIGNATURE + b"".join(_chunk(t, d) for t, d in chunks + [(b"IEND", b"")])


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))
    )
