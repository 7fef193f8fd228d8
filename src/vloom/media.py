"""Image bytes -> pixels, safely: one decoder shared by every stage that looks at images."""

from __future__ import annotations

import io
import re
import struct
import warnings
import zlib

try:  # the same inflate, about 3x faster (PNG data is inflated to check it)
    from zlib_ng import zlib_ng as _inflate
except ImportError:
    _inflate = zlib

import numpy as np
from PIL import Image, ImageFile

# Pillow's own default (~89M pixels) warns; above 2x it raises. Make both an error so a
# decompression bomb is rejected with a reason rather than exhausting memory.
MAX_IMAGE_PIXELS = 89_478_485


class ImageError(ValueError):
    """Bytes that do not decode to a usable image; `reason` is a short slug for ledgers."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _pin_pillow() -> None:
    """Pillow's process-wide switches, set before every decode: other libraries flip them on
    import (lmms-eval sets LOAD_TRUNCATED_IMAGES = True), which would let a truncated image
    through as a padded one."""
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    ImageFile.LOAD_TRUNCATED_IMAGES = False


def decode_image(data: bytes) -> Image.Image:
    """Decode to RGB, raising ImageError(reason=undecodable_image|decompression_bomb)."""
    img = _open(data)
    try:
        img.load()
    except Exception as e:  # Pillow raises many types for bad bytes
        raise ImageError(
            "undecodable_image", f"image does not decode: {type(e).__name__}: {e}"
        ) from None
    if img.mode == "P" and "transparency" in img.info:
        # Same pixels as P -> RGB, without Pillow's warning for each such image (screenshots
        # with a transparent palette entry; GIMP's help has hundreds).
        img = img.convert("RGBA")
    return img.convert("RGB")


def to_array(data: bytes, size: int) -> np.ndarray:
    """Decode and resize to a square `size` x `size` uint8 array [H, W, 3] (aspect not kept)."""
    img = decode_image(data)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BICUBIC)
    return np.array(img, dtype=np.uint8)  # a writable copy: torch.from_numpy needs one


# Leading bytes of the formats Pillow decodes that pages actually use; the declared type
# (extension, Content-Type) is never trusted.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)


def sniff_image(head: bytes) -> str | None:
    """The image format from the first bytes (>= 12 of them), or None if it is not an image."""
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def check_image(data: bytes) -> tuple[str, int, int]:
    """Sniff and decode `data`; return (format, width, height) or raise ImageError.

    Accepts and rejects exactly what a full `decode_image` would. A plain PNG (not interlaced,
    not animated, IDAT then IEND) is checked without building pixels: its header is read by
    Pillow (bomb limits included) and its image data inflated and its row filters checked, as
    Pillow's decoder would; that is most of what a full decode costs, without unfiltering and
    converting every pixel (PNG decoding is the largest cost of ingesting an image-rich site).
    """
    fmt = sniff_image(data[:16])
    if fmt is None:
        raise ImageError("not_an_image", "bytes do not start like any supported image format")
    if fmt == "png":
        img = _open(data)
        ok = _png_data_ok(data, img)
        if ok is True:
            return fmt, img.width, img.height
        if ok is False:
            raise ImageError("undecodable_image", "image does not decode: PNG data is broken")
    elif fmt == "jpeg":
        return fmt, *_jpeg_size(data)
    img = decode_image(data)
    return fmt, img.width, img.height


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Decode a JPEG at 1/8 scale (libjpeg still reads every coefficient, so damage shows as it
    would at full size; only the inverse DCT and the pixels shrink); return its full size."""
    img = _open(data)
    size = img.size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.draft(None, (max(size[0] // 8, 1), max(size[1] // 8, 1)))
            img.load()
            img.convert("RGB")
    except Exception as e:  # Pillow raises many types for bad bytes
        raise ImageError(
            "undecodable_image", f"image does not decode: {type(e).__name__}: {e}"
        ) from None
    return size


def _open(data: bytes) -> Image.Image:
    """Pillow's header read alone, with decode_image's bomb limits and reasons."""
    _pin_pillow()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError("decompression_bomb", f"image too large to decode safely: {e}") from None
    except Exception as e:  # Pillow raises many types for bad bytes
        raise ImageError(
            "undecodable_image", f"image does not decode: {type(e).__name__}: {e}"
        ) from None


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel


def _png_data_ok(data: bytes, img: Image.Image) -> bool | None:
    """Whether Pillow's PNG decoder would take the image data; None: not a case this covers
    (interlaced, animated, an odd mode, chunks after the image data), decode it fully."""
    if (
        img.format != "PNG"
        or img.info.get("interlace")
        or getattr(img, "is_animated", False)
        or img.mode not in ("1", "L", "LA", "P", "RGB", "RGBA")
        or len(img.tile) != 1
        or img.tile[0][0] != "zip"
    ):
        return None
    width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if interlace or ctype not in _PNG_CHANNELS or (width, height) != img.size:
        return None
    row = 1 + (width * _PNG_CHANNELS[ctype] * depth + 7) // 8  # filter byte + samples
    need = row * height
    z = _inflate.decompressobj()
    got = 0
    bad_filter = False  # a row filter byte Pillow does not know (> 4), read as the data comes
    pos = img.tile[0][2]  # the first IDAT's data, where Pillow found it
    length = struct.unpack(">I", data[pos - 8 : pos - 4])[0]
    # Accepted here only when the stream ends (checksum read) with exactly the image's rows and
    # known row filters; broken, short, long or cut data is left to a full decode, so every
    # such verdict stays Pillow's own (where it stops in a damaged stream depends on its zlib).
    while True:  # consecutive IDAT chunks, as Pillow's decoder reads them (CRCs unread)
        chunk = data[pos : pos + length]
        try:
            out = z.decompress(chunk, need + 1 - got)
        except _inflate.error:
            return None  # broken data: whether Pillow reaches it first, a full decode says
        first = -got % row  # where the next row's filter byte lies in this piece
        if first < len(out) and max(out[first::row]) > 4:
            bad_filter = True
        got += len(out)
        if z.eof or got > need:
            break
        if z.unconsumed_tail:
            return None
        head = data[pos + length + 4 : pos + length + 12]
        if len(chunk) < length or len(head) < 8 or head[4:] != b"IDAT":
            return None  # the data ends early: a full decode says what Pillow makes of it
        pos, length = pos + length + 12, struct.unpack(">I", head[:4])[0]
    if got != need:
        return None
    if bad_filter:
        return False  # a row filter Pillow does not know
    return _png_tail_ok(data, pos + length)


def _png_tail_ok(data: bytes, end: int) -> bool | None:
    """After the image data Pillow reads on to IEND, tolerating a cut or garbled header; any
    other chunk there is left to a full decode."""
    head = data[end + 4 : end + 12]
    if len(head) < 8 or head[4:] == b"IEND" or not re.fullmatch(rb"\w{4}", head[4:]):
        return True
    return None
