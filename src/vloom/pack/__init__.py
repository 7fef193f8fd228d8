"""Tokenizer training, image preprocessing, sequence packing and the streaming dataset."""

from vloom.pack.dataset import PackedStream
from vloom.pack.run import STATS_FILE, run_pack, tokens_per_image

__all__ = ["PackedStream", "STATS_FILE", "run_pack", "tokens_per_image"]
