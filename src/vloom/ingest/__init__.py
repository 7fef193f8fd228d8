"""Ingestion: real sources (HTML, WARC, PDF, image-text pairs) -> Documents in the OBELICS schema.

    vloom ingest html  PAGES_DIR --out data/raw
    vloom ingest warc  crawl.warc.gz --out data/raw
    vloom ingest pdf   papers/ --out data/raw
    vloom ingest pairs shards/*.tar table.parquet --out data/raw

Each kind is a `Source` (see base.py) named in `SOURCES`; `run_ingest` (run.py) writes shards
and a `ledger.json` that counts every input.
"""
