"""The `data:` section's sources as stages: ingest each, then their union with a held-out split.

    ROOT/synth/            the world (kind synth), as without a data section
    ROOT/sources/<name>/   an ingest source's shards + ledger.json (`vloom ingest` into the run)
    ROOT/union/            every source's training documents, retagged with the source name,
                           + ledger.json (held-out counts) + eval/ (held-out sets)

Curation reads ROOT/union, so one curated/ledger.json covers every source; the report joins
the ingest ledgers to it (raw pages -> documents -> kept -> tokens).
"""

from vloom.sources.check import SourceError, check_sources, curate_config, present
from vloom.sources.stage import ingest_sources, source_inputs
from vloom.sources.union import UNION, build_union

__all__ = [
    "UNION",
    "SourceError",
    "build_union",
    "check_sources",
    "curate_config",
    "ingest_sources",
    "present",
    "source_inputs",
]
