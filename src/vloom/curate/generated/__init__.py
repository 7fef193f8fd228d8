"""Curation steps that write with a model (issue 18): importing this package registers them.

kale             knowledge-augmented captions (BLIP3-KALE), scored against the world
knowledge_units  documents -> entities, attributes, relationships (Knowledge Units)
backtranslate    documents -> (instruction, response) pairs for SFT
prox_program     a model writes each document's refinement program (ProX)
The shared batching, counting and truth helpers are in `common`.
"""

from vloom.curate.generated import backtranslate, kale, knowledge_units, prox_programs  # noqa: F401
