"""check_image's fast paths - PNG image data inflated and row filters checked (no pixels built),
a JPEG judged from its markers or decoded at 1/8 scale - accept and reject exactly what a full
decode does, on intact and damaged images of every plain mode, and return the full size."""

from __future__ import annotations

import io
import random
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vloom.media import ImageError, check_image, decode_image, sniff_image

GIMP_IMAGES = Path("/usr/share/gimp/2.0/help/en/images")


def _full(data: bytes) -> str:
    """What the full decode decides (the rule check_image must keep)."""
    if sniff_image(data[:16]) is None:
        return "not_an_image"
    try:
        decode_image(data)
    except ImageError as e:
        return e.reason
    return "ok"


def _check(data: bytes) -> str:
    try:
        _, w, h = check_image(data)
    except ImageError as e:
        return e.reason
    assert (w, h) == Image.open(io.BytesIO(data)).size
    return "ok"


def _pngs() -> list[bytes]:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 255, (37, 53, 3), dtype=np.uint8)
    pixels[10:30, 5:40] = 200  # a flat patch: filters other than None get used
    out = []
    for mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
        img = Image.fromarray(pixels)
        img = (
            Image.fromarray(pixels[:, :, 0].astype(np.uint16) * 200)
            if mode == "I;16"
            else img.convert(mode)
        )
        for kw in ({}, {"optimize": True}, {"compress_level": 0}):
            buf = io.BytesIO()
            img.save(buf, "PNG", **kw)
            out.append(buf.getvalue())
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", interlace=1)
    out.append(buf.getvalue())
    return out


def _jpegs() -> list[bytes]:
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 255, (67, 93, 3), dtype=np.uint8)
    pixels[10:40, 5:60] = 90
    out = []
    for mode in ("L", "RGB", "CMYK"):
        for kw in (
            {},
            {"progressive": True},
            {"quality": 95, "subsampling": 0},
            {"restart_marker_rows": 1},
        ):
            buf = io.BytesIO()
            Image.fromarray(pixels).convert(mode).save(buf, "JPEG", **kw)
            out.append(buf.getvalue())
    return out


def _damaged(data: bytes, rng: random.Random, n: int) -> list[bytes]:
    out = [data]
    for _ in range(n):
        k = rng.randrange(2, len(data))
        c = rng.random()
        if c < 0.3:
            out.append(data[:k])  # cut
        elif c < 0.6:
            out.append(data[:k] + bytes(rng.randrange(1, 16)) + data[k + 16 :])  # zeroed
        elif c < 0.8:
            b = bytearray(data)
            b[k] ^= 1 << rng.randrange(8)  # one bit flipped
            out.append(bytes(b))
        else:
            out.append(data[:k] + data[k + rng.randrange(1, 40) :])  # bytes dropped
    return out


def _same_decisions(pngs: list[bytes], per_image: int) -> int:
    rng = random.Random(0)
    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for data in pngs:
            for case in _damaged(data, rng, per_image):
                assert _check(case) == _full(case), (len(data), len(case))
                n += 1
    return n


def test_png_check_decides_like_a_full_decode():
    assert _same_decisions(_pngs(), 60) > 1000


def test_jpeg_check_decides_like_a_full_decode():
    assert _same_decisions(_jpegs(), 60) > 500


def _marker_damaged(data: bytes, rng: random.Random, n: int) -> list[bytes]:
    """Damage aimed at a JPEG's marker segments (tables, frame and scan headers), which the
    check reads itself instead of decoding."""
    marks = [i for i in range(len(data) - 1) if data[i] == 0xFF and 0xC0 <= data[i + 1] <= 0xDD]
    out = []
    for _ in range(n):
        k = min(len(data) - 1, rng.choice(marks) + rng.randrange(0, 40))
        b = bytearray(data)
        c = rng.random()
        if c < 0.5:
            b[k] ^= 1 << rng.randrange(8)
        elif c < 0.8:
            b[k] = rng.randrange(256)
        else:
            del b[k : k + rng.randrange(1, 4)]
        out.append(bytes(b))
    return out


def test_jpeg_marker_check_decides_like_a_full_decode():
    """A well-formed JPEG is judged from its markers (no decode); damage to them decides as a
    full decode does, whether the markers still pass (then libjpeg only warns) or not."""
    from vloom.media import _jpeg_plain, _open

    jpegs = _jpegs()
    assert all(_jpeg_plain(d, _open(d)) for d in jpegs)  # baseline, progressive, restarts
    assert not _jpeg_plain(jpegs[0][:-1], _open(jpegs[0]))  # cut: no EOI, decoded
    rng = random.Random(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for data in jpegs:
            for case in _marker_damaged(data, rng, 80):
                assert _check(case) == _full(case), len(case)


def _png_chunk(cid: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + cid + body + struct.pack(">I", zlib.crc32(cid + body))


def test_png_text_after_the_image_data_decides_like_a_full_decode():
    """Text chunks after IDAT (GIMP's screenshots have them) are read by Pillow's own code, not
    by a full decode: cut, garbled or oversized ones decide the same."""
    rng = random.Random(4)
    tails = (
        _png_chunk(b"tEXt", b"Comment\x00made by hand"),
        _png_chunk(b"zTXt", b"Title\x00\x00" + zlib.compress(b"x" * 300)),
        _png_chunk(b"zTXt", b"Big\x00\x00" + zlib.compress(b"x" * 2_000_000)),  # over Pillow's cap
        _png_chunk(b"iTXt", b"Key\x00\x00\x00en\x00Key\x00value"),
        _png_chunk(b"tEXt", b"A\x00b") + _png_chunk(b"prVt", b"private"),
    )
    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for png in _pngs()[:-1]:  # not the interlaced one (decoded in full anyway)
            end = png.rindex(b"IEND") - 4
            for tail in tails:
                data = png[:end] + tail + png[end:]
                cases = [data]
                for _ in range(12):
                    k = rng.randrange(end - 8, len(data))
                    b = bytearray(data)
                    if rng.random() < 0.4:
                        cases.append(data[:k])
                    else:
                        b[k] ^= 1 << rng.randrange(8)
                        cases.append(bytes(b))
                for case in cases:
                    assert _check(case) == _full(case), len(case)
                    n += 1
    assert n > 1000


def test_png_check_returns_the_size_and_rejects_bombs():
    buf = io.BytesIO()
    Image.new("RGB", (70, 30), "red").save(buf, "PNG")
    assert check_image(buf.getvalue()) == ("png", 70, 30)
    buf = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buf, "PNG")  # 100 M pixels: over the limit
    with pytest.raises(ImageError) as e:
        check_image(buf.getvalue())
    assert e.value.reason == "decompression_bomb"


@pytest.mark.skipif(not GIMP_IMAGES.is_dir(), reason="gimp-help-en not installed (real PNGs)")
def test_png_check_decides_like_a_full_decode_on_real_pngs():
    pngs = [p.read_bytes() for p in sorted(GIMP_IMAGES.rglob("*.png"))[::40]]
    assert _same_decisions(pngs, 25) > 500


@pytest.mark.skipif(not GIMP_IMAGES.is_dir(), reason="gimp-help-en not installed (real JPEGs)")
def test_jpeg_check_decides_like_a_full_decode_on_real_jpegs():
    jpegs = [p.read_bytes() for p in sorted(GIMP_IMAGES.rglob("*.jpg"))[::12]]
    assert _same_decisions(jpegs, 25) > 500


def test_a_library_that_loads_truncated_images_does_not_change_the_decisions(monkeypatch):
    """lmms-eval sets Pillow's LOAD_TRUNCATED_IMAGES = True when imported; a truncated PNG or
    JPEG must still be rejected by vloom's checks in the same process."""
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    png, jpeg = _pngs()[0], _jpegs()[0]
    for data in (png[: len(png) // 2], jpeg[: len(jpeg) // 2]):
        assert _check(data) == "undecodable_image"
        with pytest.raises(ImageError):
            decode_image(data)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # pinned by the check itself


def _image_data(png: bytes) -> tuple[int, int, bytes]:
    """(where the first IDAT starts, where the last one ends, their data joined)."""
    first = png.index(b"IDAT") - 4
    stream, pos = b"", first
    while png[pos + 4 : pos + 8] == b"IDAT":  # every IDAT's data (there may be several)
        n = struct.unpack(">I", png[pos : pos + 4])[0]
        stream += png[pos + 8 : pos + 8 + n]
        pos += 12 + n
    return first, pos, stream


def _split_idat(png: bytes, rng: random.Random) -> bytes:
    """The PNG with its image data cut into IDAT chunks of random sizes, some empty, sometimes
    with bytes after the end of the stream or an IDAT after the one where it ends."""
    first, end, stream = _image_data(png)
    c = rng.random()
    if c < 0.15:
        stream += bytes(rng.randrange(1, 9))  # after the end of the stream, same IDAT
    chunks, i = [], 0
    while i < len(stream):
        n = rng.choice((0, 1, 2, 7, 64, 1000, len(stream)))
        chunks.append(stream[i : i + n])
        i += n
    if c > 0.85:
        chunks.append(rng.choice((b"", b"\x00\x01")))  # an IDAT after the one the stream ends in
    body = b"".join(_png_chunk(b"IDAT", ch) for ch in chunks)
    return png[:first] + body + png[end:]


def _bad_filter(png: bytes, rng: random.Random) -> bytes:
    """The PNG with one row's filter byte set to one Pillow does not know (the stream intact)."""
    width, height, depth, ctype = struct.unpack(">IIBB", png[16:26])
    row = 1 + (width * {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype] * depth + 7) // 8
    first, end, stream = _image_data(png)
    raw = bytearray(zlib.decompress(stream))
    raw[row * rng.randrange(height)] = rng.randrange(5, 256)
    return png[:first] + _png_chunk(b"IDAT", zlib.compress(bytes(raw))) + png[end:]


def test_png_data_inflated_in_one_buffer_decides_like_chunk_by_chunk(monkeypatch):
    """The image data inflated in one call into one buffer (vloom.media._png_idat_ok, by
    libdeflate or by zlib-ng) decides as feeding its IDAT chunks one by one does, and as a full
    decode does, on intact and damaged PNGs cut into many IDAT chunks (empty ones, bytes after
    the stream, an IDAT after it)."""
    from vloom import media

    if media._Decompressor is None:
        pytest.skip("zlib-ng without _ZlibDecompressor: the chunk-by-chunk path runs anyway")
    rng = random.Random(5)
    pngs = _pngs()[:-1]  # not the interlaced one (decoded in full anyway)
    if GIMP_IMAGES.is_dir():
        pngs += [p.read_bytes() for p in sorted(GIMP_IMAGES.rglob("*.png"))[::150]]
    pngs += [_bad_filter(png, rng) for png in pngs]
    cases = []
    for png in pngs:
        for _ in range(4):
            split = _split_idat(png, rng)
            cases += _damaged(split, rng, 12)
    verdicts = {None: 0, True: 0, False: 0}
    lib = _CountingInflate(media._libdeflate) if media._libdeflate is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for case in cases:
            monkeypatch.setattr(media, "_libdeflate", lib)
            try:
                img = media._open(case)
            except ImageError:
                continue
            one = media._png_data_ok(case, img)  # libdeflate first, where it is installed
            monkeypatch.setattr(media, "_libdeflate", None)
            try:
                one_ng = media._png_data_ok(case, media._open(case))
                monkeypatch.setattr(media, "_Decompressor", None)
                by_chunk = media._png_data_ok(case, media._open(case))
            finally:
                monkeypatch.undo()
            assert one is one_ng is by_chunk, len(case)
            assert _check(case) == _full(case), len(case)
            verdicts[one] += 1
    assert min(verdicts.values()) > 20, verdicts  # every kind of verdict was reached
    assert lib is None or lib.inflated > 100, lib.inflated  # libdeflate's path was taken


class _CountingInflate:
    """The `deflate` module (libdeflate), counting the streams it inflated."""

    def __init__(self, lib) -> None:
        self.lib, self.DeflateError, self.inflated = lib, lib.DeflateError, 0

    def zlib_decompress(self, data, size: int) -> bytes:
        out = self.lib.zlib_decompress(data, size)
        self.inflated += 1
        return out


def _header_chunks(mode: str) -> list[bytes]:
    """Chunks to put before IDAT, each with a valid CRC, so that Pillow's handler for it (not
    its checksum test) decides: good ones, and the ones each handler rejects."""
    big = zlib.compress(b"x" * 2_000_000)  # inflates past Pillow's MAX_TEXT_CHUNK
    out = [
        _png_chunk(b"tEXt", b"Comment\x00made by hand"),
        _png_chunk(b"tEXt", b"no separator"),
        _png_chunk(b"tEXt", b"\x00empty key"),
        _png_chunk(b"tEXt", b"exif\x00\x01\x02"),
        _png_chunk(b"zTXt", b"Title\x00\x00" + zlib.compress(b"y" * 300)),
        _png_chunk(b"zTXt", b"Title\x00\x01" + zlib.compress(b"y" * 300)),  # unknown method
        _png_chunk(b"zTXt", b"Title\x00\x00not zlib"),
        _png_chunk(b"zTXt", b"Title\x00\x00" + big),
        _png_chunk(b"zTXt", b"Title"),
        _png_chunk(b"zTXt", b"\x00\x00" + big),  # no key: inflated (and too large) all the same
        _png_chunk(b"iTXt", b"Key\x00\x00\x00en\x00Key\x00value"),
        _png_chunk(b"iTXt", b"Key\x00\x01\x00en\x00Key\x00" + zlib.compress(b"v" * 50)),
        _png_chunk(b"iTXt", b"Key\x00\x01\x00en\x00Key\x00" + big),
        _png_chunk(b"iTXt", b"Key\x00\x01\x00en\x00Key\x00not zlib"),
        _png_chunk(b"iTXt", b"Key\x00\x01\x01en\x00Key\x00" + big),  # unknown method: skipped
        _png_chunk(b"iTXt", b"Key\x00\x00\x00en\x00Key\x00\xff\xfe"),  # not UTF-8
        _png_chunk(b"iTXt", b"Key\x00\x00"),
        _png_chunk(b"iTXt", b"Key\x00\x00\x00en"),
        _png_chunk(b"iCCP", b"profile\x00\x00" + zlib.compress(b"p" * 3000)),
        _png_chunk(b"iCCP", b"profile\x00\x01" + zlib.compress(b"p" * 3000)),
        _png_chunk(b"iCCP", b"profile\x00\x00not zlib"),
        _png_chunk(b"iCCP", b"profile\x00\x00" + big),
        _png_chunk(b"iCCP", b"profile"),
        _png_chunk(b"iCCP", b"profile\x00"),
        _png_chunk(b"iCCP", b""),
        _png_chunk(b"gAMA", struct.pack(">I", 45455)),
        _png_chunk(b"gAMA", b"\x00\x01"),
        _png_chunk(b"cHRM", bytes(32)),
        _png_chunk(b"cHRM", bytes(31)),
        _png_chunk(b"sRGB", b"\x00"),
        _png_chunk(b"sRGB", b""),
        _png_chunk(b"pHYs", bytes(9)),
        _png_chunk(b"pHYs", bytes(8)),
        _png_chunk(b"tIME", bytes(7)),
        _png_chunk(b"bKGD", bytes(6)),
        _png_chunk(b"eXIf", b"MM\x00*"),
        _png_chunk(b"PLTE", b""),
        _png_chunk(b"prVt", b"private"),
        _png_chunk(b"ab_d", b"odd but a chunk name"),
        _png_chunk(b"ab!d", b"not a chunk name"),
        _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 5, 5, 8, 0, 0, 0, 0)),
        _png_chunk(b"IEND", b""),
        _png_chunk(b"acTL", struct.pack(">II", 1, 0)),
        _png_chunk(b"acTL", b"\x00"),
        _png_chunk(b"fcTL", bytes(26)),
        struct.pack(">I", 1 << 30) + b"tEXt" + b"cut",  # longer than the file
    ]
    out += [_png_chunk(b"tRNS", bytes(n)) for n in (0, 1, 2, 5, 6, 256)]
    out += [_png_chunk(b"tRNS", b"\xff\xff\x00\xff")]
    return out


def test_png_header_read_without_pillow_is_pillows():
    """A PNG's header is read without Pillow (vloom.media._png_head) only where Pillow would
    read it without error to the same size and image-data position; then check_image decides
    as a full decode does. Every chunk a header may hold, good and bad (valid CRCs, so that
    Pillow's handler for it decides), and damage anywhere before the image data."""
    import PIL
    from PIL import PngImagePlugin

    from vloom import media

    if not media._PNG_HEAD_ON:  # the decision check_image itself reads
        pytest.skip(f"Pillow {PIL.__version__}: check_image reads PNG headers with Pillow itself")
    rng = random.Random(6)
    pngs = _pngs()[:-1]
    if GIMP_IMAGES.is_dir():  # iCCP, bKGD, pHYs, tIME, tEXt, iTXt before the image data
        pngs += [p.read_bytes() for p in sorted(GIMP_IMAGES.rglob("*.png"))[::100]]
    read_here = 0
    cases = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for png in pngs:
            mode = Image.open(io.BytesIO(png)).mode
            idat = png.index(b"IDAT") - 4
            variants = [png]
            for chunk in _header_chunks(mode):
                variants.append(png[:33] + chunk + png[33:])
                variants.append(png[:idat] + chunk + png[idat:])
            for _ in range(30):  # damage in the header itself (a CRC breaks, or a length)
                b = bytearray(png)
                k = rng.randrange(8, idat + 8)
                if rng.random() < 0.5:
                    b[k] ^= 1 << rng.randrange(8)
                    variants.append(bytes(b))
                else:
                    variants.append(png[:k])
            for case in variants:
                head = media._png_head(case)
                if head is not None:
                    read_here += 1
                    img = Image.open(io.BytesIO(case))  # no error, or the test fails here
                    assert isinstance(img, PngImagePlugin.PngImageFile)
                    assert (*img.size, img.tile[0][2]) == head
                    assert img.mode in media._PNG_PLAIN_MODES and len(img.tile) == 1
                    assert not img.info.get("interlace") and not img.is_animated
                assert _check(case) == _full(case), (len(png), len(case))
                cases += 1
    assert read_here > cases // 3 and cases > 2000
