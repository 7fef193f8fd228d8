"""One test per image_filter drop reason, on real (and really broken) image bytes."""

import io
import struct
import zlib

from PIL import Image

from vloom.curate.filters.image_filter import ImageFilter
from vloom.doc import Document


def png(w: int, h: int, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 40, 40)).save(buf, format=fmt)
    return buf.getvalue()


def forged_png_header(w: int, h: int) -> bytes:
    """A PNG that claims w x h pixels: what a decompression bomb looks like to a reader."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def verdict(*images: bytes, **kw) -> tuple[bool, str]:
    items = ["A picture of a red square."]
    for im in images:
        items += [im, "Another picture."]
    return ImageFilter(**kw).filter(Document.from_items("d", items))


def test_good_images_are_kept():
    assert verdict(png(32, 32), png(16, 40, "JPEG")) == (True, "")


def test_text_only_document_passes():
    assert ImageFilter().filter(Document.from_items("t", ["only words here"])) == (True, "")


def test_random_bytes_are_undecodable():
    assert verdict(png(32, 32), b"\x13\x37" * 50) == (False, "undecodable_image")


def test_truncated_png_is_undecodable():
    good = png(64, 64)
    assert verdict(good[: len(good) // 2]) == (False, "undecodable_image")


def test_truncated_png_verify_mode_also_drops():
    good = png(64, 64)
    assert verdict(good[: len(good) // 2], decode="verify") == (False, "undecodable_image")


def test_decompression_bomb_is_dropped_not_raised():
    assert verdict(forged_png_header(100_000, 100_000)) == (False, "decompression_bomb")


def test_decompression_bomb_limit_is_a_parameter():
    assert verdict(png(100, 100), max_pixels=5000) == (False, "decompression_bomb")
    assert verdict(png(100, 100), max_pixels=10_000) == (True, "")


def test_tiny_image():
    assert verdict(png(32, 32), png(2, 2)) == (False, "image_too_small")


def test_min_side_is_the_smallest_side():
    assert verdict(png(64, 7)) == (False, "image_too_small")
    assert verdict(png(64, 8)) == (True, "")
    assert verdict(png(64, 8), min_side=16) == (False, "image_too_small")
