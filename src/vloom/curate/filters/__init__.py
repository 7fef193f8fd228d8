"""Per-document filters; importing this package registers them."""

from vloom.curate.filters.c4_quality import C4Quality
from vloom.curate.filters.fineweb_quality import FineWebQuality
from vloom.curate.filters.gopher_quality import GopherQuality
from vloom.curate.filters.gopher_repetition import GopherRepetition
from vloom.curate.filters.image_filter import ImageFilter
from vloom.curate.filters.language import LanguageFilter
from vloom.curate.filters.pii import PiiMask

__all__ = [
    "C4Quality",
    "FineWebQuality",
    "GopherQuality",
    "GopherRepetition",
    "ImageFilter",
    "LanguageFilter",
    "PiiMask",
]
