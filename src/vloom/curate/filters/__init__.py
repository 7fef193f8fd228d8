"""Per-document filters; importing this package registers them."""

from vloom.curate.filters.gopher_quality import GopherQuality
from vloom.curate.filters.image_filter import ImageFilter

__all__ = ["GopherQuality", "ImageFilter"]
