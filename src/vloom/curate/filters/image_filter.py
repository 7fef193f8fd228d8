"""Drop documents whose images cannot be decoded, are decompression bombs, or are tiny."""

from __future__ import annotations

import io
import warnings
from typing import Literal

from PIL import Image

from vloom.curate.base import Filter
from vloom.curate.registry import register
from vloom.doc import Document

# Pillow's own default limit; above it Pillow warns, above twice it raises
DEFAULT_MAX_PIXELS = 89_478_485


@register("image_filter")
class ImageFilter(Filter):
    """Keep a document only if every image decodes and its smallest side is >= `min_side`.

    `decode="load"` (default) decodes the pixels, which catches truncated files; for
    JPEG it decodes a reduced-size draft, so the cost stays small on large photos.
    `decode="verify"` only checks the container (PNG CRCs), cheaper but blind to some
    truncations. Images over `max_pixels` are dropped as decompression bombs from the
    header alone, before any pixel is allocated. Text-only documents pass.
    """

    def __init__(
        self,
        min_side: int = 8,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        decode: Literal["load", "verify"] = "load",
    ) -> None:
        super().__init__()
        if min_side < 1:
            raise ValueError(f"min_side must be >= 1, got {min_side}")
        if max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
        self.min_side = min_side
        self.max_pixels = max_pixels
        self.decode = decode

    def check_image(self, data: bytes) -> str | None:
        """The drop reason for one encoded image, or None when it is fine."""
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its limit; make that an error too
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                with Image.open(io.BytesIO(data)) as im:
                    w, h = im.size
                    if w * h > self.max_pixels:
                        return "decompression_bomb"
                    if self.decode == "verify":
                        im.verify()
                    else:
                        if im.format == "JPEG":
                            im.draft("RGB", (max(self.min_side, 1), max(self.min_side, 1)))
                        im.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                return "decompression_bomb"
            except Exception:  # noqa: BLE001 - any decoder failure means "cannot use this image"
                return "undecodable_image"
        if min(w, h) < self.min_side:
            return "image_too_small"
        return None

    def filter(self, doc: Document) -> tuple[bool, str]:
        for im in doc.images:
            if im is None:
                continue
            reason = self.check_image(im)
            if reason is not None:
                return False, reason
        return True, ""
