"""Image bytes -> pixels, safely: one decoder shared by every stage that looks at images."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

# Pillow's own default (~89M pixels) warns; above 2x it raises. Make both an error so a
# decompression bomb is rejected with a reason rather than exhausting memory.
MAX_IMAGE_PIXELS = 89_478_485


class ImageError(ValueError):
    """Bytes that do not decode to a usable image; `reason` is a short slug for ledgers."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def decode_image(data: bytes) -> Image.Image:
    """Decode to RGB, raising ImageError(reason=undecodable_image|decompression_bomb)."""
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError("decompression_bomb", f"image too large to decode safely: {e}") from None
    except Exception as e:  # Pillow raises many types for bad bytes
        raise ImageError(
            "undecodable_image", f"image does not decode: {type(e).__name__}: {e}"
        ) from None
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
    """Sniff and fully decode `data`; return (format, width, height) or raise ImageError."""
    fmt = sniff_image(data[:16])
    if fmt is None:
        raise ImageError("not_an_image", "bytes do not start like any supported image format")
    img = decode_image(data)
    return fmt, img.width, img.height
