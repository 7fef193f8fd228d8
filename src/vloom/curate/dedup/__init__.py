"""Deduplication steps; importing this package registers them."""

from vloom.curate.dedup.exact import ExactDedup

__all__ = ["ExactDedup"]
