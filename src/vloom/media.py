"""Image bytes -> pixels, safely: one decoder shared by every stage that looks at images."""

from __future__ import annotations

import io
import re
import struct
import warnings
import zlib
from collections.abc import Callable

try:  # the same inflate, about 3x faster (PNG data is inflated to check it)
    from zlib_ng import zlib_ng as _inflate
except ImportError:
    _inflate = zlib
try:  # libdeflate: a whole stream into a buffer of its exact size, ~1.4x zlib-ng's inflate
    import deflate as _libdeflate
except ImportError:
    _libdeflate = None

import numpy as np
import PIL
from PIL import Image, ImageFile
from PIL.PngImagePlugin import _MODES as _PNG_MODES
from PIL.PngImagePlugin import MAX_TEXT_CHUNK as _PNG_TEXT_CHUNK
from PIL.PngImagePlugin import PngStream as _PngStream
from PIL.PngImagePlugin import is_cid as _png_is_cid

# inflates into one buffer of the size asked for (zlib's decompressobj grows its own)
_Decompressor = getattr(_inflate, "_ZlibDecompressor", None)

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
    not animated, IDAT then IEND) is checked without building pixels: its header is read as
    Pillow reads it (`_png_head`; by Pillow itself where that is not certain, bomb limits
    included) and its image data inflated and its row filters checked, as
    Pillow's decoder would; that is most of what a full decode costs, without unfiltering and
    converting every pixel (PNG decoding is the largest cost of ingesting an image-rich site);
    text chunks after the image data are read by Pillow's own code for them. A well-formed
    JPEG is judged from its markers (`_jpeg_plain`), any other decoded at 1/8 scale.
    """
    fmt = sniff_image(data[:16])
    if fmt is None:
        raise ImageError("not_an_image", "bytes do not start like any supported image format")
    if fmt == "png":
        head = _png_head(data) if _PNG_HEAD_ON else None
        if head is not None:
            w, h, pos = head
            ok = _png_rows_ok(data, (w, h), pos, lambda: _open(data))
            size = (w, h)
        else:
            img = _open(data)
            ok = _png_data_ok(data, img)
            size = img.size
        if ok is True:
            return fmt, *size
        if ok is False:
            raise ImageError("undecodable_image", "image does not decode: PNG data is broken")
    elif fmt == "jpeg":
        img = _open(data)
        if _jpeg_plain(data, img):
            return fmt, img.width, img.height
        return fmt, *_jpeg_size(img)
    img = decode_image(data)
    return fmt, img.width, img.height


def _jpeg_size(img: Image.Image) -> tuple[int, int]:
    """Decode a JPEG (opened, not loaded) at 1/8 scale (libjpeg still reads every coefficient,
    so damage shows as it would at full size; only the inverse DCT and the pixels shrink);
    return its full size."""
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


# JPEG markers a plain file holds: SOF0/SOF1 (sequential) or SOF2 (progressive), Huffman coded
_SOF_KINDS = {0xC0: False, 0xC1: False, 0xC2: True}  # marker -> progressive
_JPEG_MARK = re.compile(rb"\xff(?!\x00)")  # in entropy-coded data: a marker (FF 00 is a byte)


def _jpeg_plain(data: bytes, img: Image.Image) -> bool:
    """Whether a JPEG is one libjpeg decodes without error, from its markers alone (the
    entropy-coded data is not decoded). Only a well-formed file is judged here: 8-bit Huffman
    sequential (one scan of every component) or progressive (valid scan parameters, every
    component scanned), every table it uses defined and valid, restart markers in order, and
    EOI as the last two bytes - so a cut file (no EOI at the end), a stray marker or anything
    unusual goes to the decode, as before. Damaged entropy-coded data that still ends in EOI
    is what libjpeg itself only warns about (it fills what it cannot read and goes on), so it
    passes either way; a full decode does the same."""
    if img.format != "JPEG" or not data.endswith(b"\xff\xd9"):
        return False
    n = len(data) - 2
    pos = 2
    quant: set[int] = set()
    huff: set[tuple[int, int]] = set()
    comps: dict[int, tuple[int, int, int]] = {}  # component id -> (h, v, quant table)
    progressive = None
    scanned: set[int] = set()
    restart = 0
    scans = 0
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return False
        mark = data[pos + 1]
        seg = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        body = data[pos + 4 : pos + 2 + seg]
        if seg < 2 or pos + 2 + seg > n:
            return False
        pos += 2 + seg
        if 0xE0 <= mark <= 0xEF or mark == 0xFE:  # APPn, COM
            continue
        if mark == 0xDB:  # DQT
            while body:
                pq, tq = body[0] >> 4, body[0] & 15
                size = 1 + 64 * (pq + 1)
                if pq > 1 or tq > 3 or len(body) < size:
                    return False
                quant.add(tq)
                body = body[size:]
        elif mark == 0xC4:  # DHT
            while body:
                if len(body) < 17:
                    return False
                tc, th = body[0] >> 4, body[0] & 15
                counts = body[1:17]
                total = sum(counts)
                if tc > 1 or th > 3 or total > 256 or len(body) < 17 + total:
                    return False
                if not _huffman_ok(counts, body[17 : 17 + total], tc == 0):
                    return False
                huff.add((tc, th))
                body = body[17 + total :]
        elif mark == 0xDD:  # DRI
            if seg != 4:
                return False
            restart = struct.unpack(">H", body)[0]
        elif mark in _SOF_KINDS:
            if progressive is not None or len(body) < 6:
                return False
            progressive = _SOF_KINDS[mark]
            prec, h, w, nc = struct.unpack(">BHHB", body[:6])
            if prec != 8 or not h or not w or nc not in (1, 3, 4) or len(body) != 6 + 3 * nc:
                return False
            for k in range(nc):
                cid, hv, tq = body[6 + 3 * k : 9 + 3 * k]
                if cid in comps or not (1 <= hv >> 4 <= 4 and 1 <= hv & 15 <= 4) or tq > 3:
                    return False
                comps[cid] = (hv >> 4, hv & 15, tq)
            hmax = max(c[0] for c in comps.values())
            vmax = max(c[1] for c in comps.values())
            if any(hmax % c[0] or vmax % c[1] for c in comps.values()):
                return False
        elif mark == 0xDA:  # SOS, then its entropy-coded data
            if progressive is None or not body:
                return False
            ns = body[0]
            if not 1 <= ns <= 4 or len(body) != 4 + 2 * ns:
                return False
            ss, se, a = body[1 + 2 * ns], body[2 + 2 * ns], body[3 + 2 * ns]
            ah, al = a >> 4, a & 15
            ids = [body[1 + 2 * k] for k in range(ns)]
            tables = [body[2 + 2 * k] for k in range(ns)]
            if len(set(ids)) != ns or any(c not in comps for c in ids):
                return False
            if ns > 1 and sum(comps[c][0] * comps[c][1] for c in ids) > 10:
                return False
            if progressive:
                dc = ss == 0
                if (dc and se != 0) or (not dc and (ss > se or se > 63 or ns != 1)):
                    return False
                if (ah and al != ah - 1) or al > 13:
                    return False
                need = [(0, t >> 4) for t in tables] if dc and not ah else []
                need += [(1, t & 15) for t in tables] if not dc else []
            else:
                if scans or ns != len(comps) or (ss, se, a) != (0, 63, 0):
                    return False
                need = [(0, t >> 4) for t in tables] + [(1, t & 15) for t in tables]
            if any(t not in huff for t in need):
                return False
            for c in ids:
                if c not in scanned and comps[c][2] not in quant:
                    return False  # its quantization table is taken at its first scan
                scanned.add(c)
            scans += 1
            pos = _entropy_end(data, pos, n, restart)
            if pos < 0:
                return False
        else:
            return False  # EOI early, DNL, SOI again, arithmetic coding, ...
    return pos == n and scans > 0 and scanned == set(comps)


def _huffman_ok(counts: bytes, symbols: bytes, dc: bool) -> bool:
    """libjpeg's checks of a Huffman table when it builds its decoder."""
    if dc and any(s > 15 for s in symbols):
        return False
    code = 0
    for length, count in enumerate(counts, 1):
        code += count
        if code > 1 << length:
            return False
        code <<= 1
    return True


def _entropy_end(data: bytes, pos: int, n: int, restart: int) -> int:
    """Where the entropy-coded data from `pos` ends (the next marker other than RSTn), or -1
    when it holds a restart marker out of order or restarts are not declared."""
    expect = 0
    for m in _JPEG_MARK.finditer(data, pos, n):
        at = m.start()
        kind = data[at + 1] if at + 1 < len(data) else -1
        if 0xD0 <= kind <= 0xD7:
            if not restart or kind != 0xD0 + expect:
                return -1
            expect = (expect + 1) % 8
            continue
        return at
    return n


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
_PNG_PLAIN_MODES = ("1", "L", "LA", "P", "RGB", "RGBA")
# Pillow versions whose PNG header reader (PngImageFile._open and its chunk handlers) _png_head
# was written against; with any other, every PNG header is read by Pillow itself.
_PNG_HEAD_PILLOW = ("13.",)
_PNG_HEAD_ON = PIL.__version__.startswith(_PNG_HEAD_PILLOW)
# ancillary chunks whose Pillow handler fails when shorter than this (with LOAD_TRUNCATED_IMAGES
# off); tRNS by mode. Chunks not named here or below are read and skipped, as Pillow does.
_PNG_MIN_LEN = {b"gAMA": 4, b"cHRM": 32, b"sRGB": 1, b"pHYs": 9, b"PLTE": 0, b"eXIf": 0}
_PNG_TRNS_MIN = {"1": 2, "L": 2, "RGB": 6}
_PNG_TEXT_BUDGET = 1 << 20  # text read before the image data; past it Pillow's own checks run


def _png_head(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, position of the first IDAT's data) for a plain PNG whose header Pillow
    reads without error, read as PngImageFile._open does but without building an image (that
    costs more than checking the header). None whenever Pillow's verdict is not certain from
    here: a bad or cut chunk or CRC, IHDR not first, an interlaced, animated or odd-mode image,
    a chunk whose handler could raise, a decompression bomb... Pillow then reads the header
    itself, so a None costs time, never a different verdict."""
    n = len(data)
    if n < 33 or data[12:16] != b"IHDR" or data[8:12] != b"\x00\x00\x00\r":
        return None
    if zlib.crc32(data[12:29]) != int.from_bytes(data[29:33], "big"):
        return None
    width, height, depth, ctype, _, filt, interlace = struct.unpack(">IIBBBBB", data[16:29])
    mode = _PNG_MODES.get((depth, ctype), ("",))[0]
    if (
        mode not in _PNG_PLAIN_MODES
        or filt
        or interlace
        or not width
        or not height
        or width * height > MAX_IMAGE_PIXELS
    ):
        return None
    pos = 33
    text = 0
    while pos + 8 <= n:
        length = int.from_bytes(data[pos : pos + 4], "big")
        cid = data[pos + 4 : pos + 8]
        start = pos + 8
        if cid == b"IDAT":
            return width, height, start
        end = start + length
        if not _png_is_cid(cid) or end + 4 > n:
            return None
        body = data[start:end]
        if zlib.crc32(body, zlib.crc32(cid)) != int.from_bytes(data[end : end + 4], "big"):
            return None
        need = _PNG_MIN_LEN.get(cid)
        if need is not None:
            if length < need:
                return None
        elif cid == b"tRNS":
            if length < _PNG_TRNS_MIN.get(mode, 0):
                return None
        elif cid in (b"tEXt", b"zTXt", b"iTXt", b"iCCP"):
            got = _png_text_len(cid, body)
            if got is None:
                return None
            text += got
            if text > _PNG_TEXT_BUDGET:
                return None
        elif cid in (b"IHDR", b"IEND", b"acTL", b"fcTL", b"fdAT") or hasattr(
            _PngStream, "chunk_" + cid.decode("ascii")
        ):
            return None  # a second header, no image data, animation, a handler not known here
        pos = end + 4
    return None


def _png_text_len(cid: bytes, body: bytes) -> int | None:
    """What Pillow's handler for a text or ICC chunk adds to its text memory, or None when it
    would raise (an unknown compression method, text that inflates past MAX_TEXT_CHUNK)."""
    if cid == b"tEXt":
        k, _, v = body.partition(b"\x00")
        return len(v) if k else 0
    if cid == b"iCCP":
        i = body.find(b"\x00")
        if i + 1 >= len(body) or body[i + 1] != 0:
            return None
        return 0 if _png_inflate(body[i + 2 :]) is not None else None
    if cid == b"zTXt":
        k, _, v = body.partition(b"\x00")
        if v and v[0] != 0:
            return None
        out = _png_inflate(v[1:])
        return None if out is None else (len(out) if k else 0)
    k, sep, r = body.partition(b"\x00")  # iTXt
    if not sep or len(r) < 2:
        return 0
    cf, cm, r = r[0], r[1], r[2:]
    parts = r.split(b"\x00", 2)
    if len(parts) < 3:
        return 0
    v = parts[2]
    if cf:
        if cm:
            return 0
        out = _png_inflate(v)
        if out is None:
            return None
        v = out
    try:
        k.decode("latin-1")
        parts[0].decode("utf-8")
        parts[1].decode("utf-8")
        return len(v.decode("utf-8"))
    except UnicodeError:
        return 0


def _png_inflate(data: bytes) -> bytes | None:
    """PngImagePlugin._safe_zlib_decompress as its callers take it: None where it raises
    ValueError (more than MAX_TEXT_CHUNK), b"" where zlib fails (Pillow reads that as empty)."""
    z = zlib.decompressobj()
    try:
        out = z.decompress(data, _PNG_TEXT_CHUNK)
    except zlib.error:
        return b""
    return None if z.unconsumed_tail else out


def _png_data_ok(data: bytes, img: Image.Image) -> bool | None:
    """Whether Pillow's PNG decoder would take the image data; None: not a case this covers
    (interlaced, animated, an odd mode, chunks after the image data), decode it fully."""
    if (
        img.format != "PNG"
        or img.info.get("interlace")
        or getattr(img, "is_animated", False)
        or img.mode not in _PNG_PLAIN_MODES
        or len(img.tile) != 1
        or img.tile[0][0] != "zip"
        or tuple(img.tile[0][1]) != (0, 0, *img.size)  # an fcTL's frame box: not the image's
    ):
        return None
    return _png_rows_ok(data, img.size, img.tile[0][2], lambda: img)


def _png_rows_ok(
    data: bytes, size: tuple[int, int], pos: int, image: Callable[[], Image.Image]
) -> bool | None:
    """_png_data_ok's decision from the first IDAT's data position `pos`; `image()` gives the
    image as Pillow opened it (only text chunks after the data need it)."""
    width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if interlace or ctype not in _PNG_CHANNELS or (width, height) != size:
        return None
    row = 1 + (width * _PNG_CHANNELS[ctype] * depth + 7) // 8  # filter byte + samples
    need = row * height
    length = struct.unpack(">I", data[pos - 8 : pos - 4])[0]
    if _Decompressor is not None:
        return _png_idat_ok(data, image, pos, length, row, need)
    z = _inflate.decompressobj()
    got = 0
    bad_filter = False  # a row filter byte Pillow does not know (> 4), read as the data comes
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
    return _png_tail_ok(data, pos + length, image)


def _png_idat_ok(
    data: bytes, image: Callable[[], Image.Image], pos: int, length: int, row: int, need: int
) -> bool | None:
    """_png_data_ok's decision with the image data inflated in one call into one buffer of the
    image's size (feeding IDAT chunks one by one, zlib's output buffer grows by doubling and
    copying: as many instructions as the inflate itself). The same verdict as feeding them in
    turn: the chunks are the ones that loop would reach (consecutive IDATs, up to a cut one or
    the first other chunk), at most need + 1 bytes come out, and the stream must end inside
    the last of them, else the loop would have met another IDAT after it (None)."""
    spans = [(pos, length)]
    while True:
        head = data[pos + length + 4 : pos + length + 12]
        if pos + length > len(data) or len(head) < 8 or head[4:] != b"IDAT":
            break
        pos, length = pos + length + 12, struct.unpack(">I", head[:4])[0]
        spans.append((pos, length))
    view = memoryview(data)
    stream = (
        view[pos : pos + length]
        if len(spans) == 1
        else b"".join([view[p : p + n] for p, n in spans])
    )
    out = _whole_stream(stream, need) if min(length, len(data) - pos) > 0 else None
    in_last = out is not None  # (libdeflate's stream ended with the last IDAT's bytes)
    if out is None:
        z = _Decompressor()
        try:
            out = z.decompress(stream, need + 1)
        except _inflate.error:
            return None  # broken data: whether Pillow reaches it first, a full decode says
        if not z.eof or len(out) != need:
            return None  # cut, short or long data: a full decode says what Pillow makes of it
        # where the stream ended: the feeding loop stops in that chunk and looks at the next
        ended = len(stream) - len(z.unused_data)
        in_last = ended > sum(min(n, len(data) - p) for p, n in spans[:-1])
    if out and max(out[::row]) > 4:
        return False  # a row filter Pillow does not know
    if not in_last:
        return None  # another IDAT follows the end of the stream: a full decode says
    return _png_tail_ok(data, pos + length, image)


def _whole_stream(stream: bytes | memoryview, need: int) -> bytes | None:
    """The zlib stream's `need` bytes by libdeflate, when it inflates to exactly that many, its
    checksum matches and that checksum is the data's last 4 bytes (the stream ends where the
    data does); else None, for zlib-ng to say where and how it ends (libdeflate does not)."""
    if _libdeflate is None:
        return None
    try:
        out = _libdeflate.zlib_decompress(stream, need)
    except _libdeflate.DeflateError:
        return None
    return out if stream[-4:] == _inflate.adler32(out).to_bytes(4, "big") else None


def _png_tail_ok(data: bytes, end: int, image: Callable[[], Image.Image]) -> bool | None:
    """After the image data Pillow reads on to IEND, tolerating a cut or garbled header; other
    chunks there (text after the pixels: a fifth of GIMP's screenshots) are read by Pillow's own
    code for them (PngImageFile.load_end, from where the data ends), so a cut or oversized text
    chunk fails as it does in a full decode."""
    head = data[end + 4 : end + 12]
    if len(head) < 8 or head[4:] == b"IEND" or not re.fullmatch(rb"\w{4}", head[4:]):
        return True
    if head[4:] in (b"IDAT", b"fcTL", b"fdAT"):
        return None  # more image data
    img = image()
    if not hasattr(img, "_PngImageFile__prepare_idat"):
        return None  # a Pillow whose PNG reader is not the one known here  # more image data, or a Pillow whose PNG reader is not the one known here
    try:
        img.fp.seek(end)  # at the last IDAT's CRC, where load_end starts reading
        img._PngImageFile__idat = 0
        img.load_end()
    except Exception:  # noqa: BLE001 - what a full decode's load raises: undecodable
        return False
    return True
