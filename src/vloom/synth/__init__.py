"""The synthetic world: procedural scenes, documents about them, pairs, eval sets, noise."""

from vloom.synth.corpus import MANIFEST, generate

__all__ = ["MANIFEST", "generate"]
