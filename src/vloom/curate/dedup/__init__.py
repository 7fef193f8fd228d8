"""Deduplication steps; importing this package registers them."""

from vloom.curate.dedup.exact import ExactDedup
from vloom.curate.dedup.image_dedup import ImageDedup
from vloom.curate.dedup.minhash import MinHashDedup
from vloom.curate.dedup.paragraph import ParagraphDedup

__all__ = ["ExactDedup", "ImageDedup", "MinHashDedup", "ParagraphDedup"]
