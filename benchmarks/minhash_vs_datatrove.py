"""MinHash near-duplicate removal, vloom vs datatrove, on the same documents.

    python benchmarks/minhash_vs_datatrove.py [--n 100000] [--seed 0] [--docs DIR]
    python benchmarks/minhash_vs_datatrove.py --million     # vloom alone, 1,000,000 docs

Default corpus: `--n` short synthetic documents (30-120 words from a Zipf vocabulary of
letter-only words) with planted duplicates: 5% exact copies and 10% near copies (1-3
words replaced) of earlier documents, labelled so both tools get precision/recall.
`--docs DIR` uses an ingested corpus (vloom Parquet shards) instead.

Each tool runs in its own subprocess, reading its input from disk and writing the kept
documents back: vloom `run_curate` with one `minhash_dedup` step (workers=1, one
process) on Parquet shards; datatrove's four-stage pipeline (MinhashDedupSignature,
Buckets with tasks=num_buckets, Cluster, Filter; LocalPipelineExecutor workers=1) on
flat (id, text) Parquet files with the same documents in the same order. Wall time is measured inside
the child around the pipeline (imports excluded); peak RSS is the child's ru_maxrss
from os.wait4 (the largest process of its tree, imports included). Peak RSS depends on
pyarrow's allocator: its default (mimalloc) keeps arenas that cost vloom, which reads
and writes whole 1000-document shards, ~50 MB more than the system allocator;
`--arrow-pool system` sets the allocator for both tools alike.

Same rules on both sides: 5-word shingles of datatrove's simplify_text, 14 bands x 8
rows, seed 1, 64-bit xxhash (vloom's minimum hashes are bit-identical to datatrove's),
text only (`match_images: false`). Two setup differences, both forced: datatrove's
English word tokenizer needs spaCy (not installed), so it gets a whitespace tokenizer,
which on punctuation-free simplified text splits where spaCy would; and datatrove
passes `str` to xxhash, which xxhash 4 rejects, so its hash function is set to xxh64 of
the UTF-8 bytes (what it computed with xxhash 3). Where the tools still differ: in a
cluster of 3+ documents datatrove keeps the root of its union-by-size tree, vloom the
first document in reading order.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_BUCKETS, ROWS, NGRAM, SEED = 14, 8, 5, 1
SHARD = 1000  # documents per shard, vloom's default (synth, ingest); a worker holds one shard


# ---- the corpus ----


def _vocab(rng: random.Random, n: int = 20000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(n)]


def synth_docs(n: int, seed: int, min_words: int = 30, max_words: int = 120):
    """Yield (id, text, duplicate_of | None) for n documents with planted duplicates."""
    rng = random.Random(seed)
    vocab = _vocab(rng)
    cum = list(itertools.accumulate(1 / (r + 1) for r in range(len(vocab))))  # Zipf
    recent: list[tuple[str, list[str]]] = []  # a window of earlier documents to copy
    for i in range(n):
        r = rng.random()
        if recent and r < 0.05:
            src_id, words = rng.choice(recent)
            yield f"d{i}", " ".join(words), src_id
            continue
        if recent and r < 0.15:
            src_id, words = rng.choice(recent)
            words = list(words)
            for _ in range(rng.randint(1, 3)):
                words[rng.randrange(len(words))] = rng.choice(vocab)
            yield f"d{i}", " ".join(words), src_id
            continue
        words = rng.choices(vocab, cum_weights=cum, k=rng.randint(min_words, max_words))
        if len(recent) < 5000:
            recent.append((f"d{i}", words))
        else:
            recent[rng.randrange(5000)] = (f"d{i}", words)
        yield f"d{i}", " ".join(words), None


def write_corpus(rows, vloom_dir: Path, flat_dir: Path | None, shard_size: int) -> dict:
    """Write Parquet shards (and flat id/text twins for datatrove); return {id: duplicate_of}."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vloom.doc import Document, write_shard

    labels: dict[str, str | None] = {}
    batch: list[tuple[str, str]] = []
    k = 0

    def flush() -> None:
        nonlocal k, batch
        name = f"part-{k:05d}"
        write_shard(vloom_dir / f"{name}.parquet", [Document.from_items(i, [t]) for i, t in batch])
        if flat_dir is not None:  # flat (id, text) Parquet, what datatrove's reader reads
            table = pa.table({"id": [i for i, _ in batch], "text": [t for _, t in batch]})
            pq.write_table(table, flat_dir / f"{name}.parquet")
        k += 1
        batch = []

    vloom_dir.mkdir(parents=True, exist_ok=True)
    if flat_dir is not None:
        flat_dir.mkdir(parents=True, exist_ok=True)
    for doc_id, text, dup_of in rows:
        labels[doc_id] = dup_of
        batch.append((doc_id, text))
        if len(batch) == shard_size:
            flush()
    if batch:
        flush()
    return labels


def corpus_from_dir(src: Path, vloom_dir: Path, flat_dir: Path) -> dict:
    """Copy an ingested corpus's documents (text only) into both formats."""
    from vloom.curate.dedup.scoring import IMAGE_DEFECTS
    from vloom.doc import read_documents

    def label(d) -> str | None:
        # text only here: an image-defect copy has its source's text, so it is a duplicate
        if d.metadata.get("defect") in IMAGE_DEFECTS:
            return d.metadata.get("source_of")
        return d.metadata.get("duplicate_of")

    rows = ((d.id, d.text, label(d)) for d in read_documents(src))
    return write_corpus(rows, vloom_dir, flat_dir, shard_size=SHARD)


# ---- the children ----


def child_vloom(in_dir: str, out_dir: str, workers: int) -> dict:
    import resource

    from vloom.config import CurateConfig, StepConfig
    from vloom.curate import run_curate

    step = StepConfig(
        name="minhash_dedup",
        ngram=NGRAM,
        bands=N_BUCKETS,
        rows=ROWS,
        num_perm=N_BUCKETS * ROWS,
        seed=SEED,
        match_images=False,  # datatrove is text-only
    )
    cfg = CurateConfig(steps=[step], workers=workers)
    t0 = time.perf_counter()
    led = run_curate(in_dir, out_dir, cfg, quiet=True)
    secs = time.perf_counter() - t0
    return {
        "seconds": secs,
        "input": led.input,
        "kept": led.kept,
        "self_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "workers_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def _dt_xxh64(text: str) -> int:
    import xxhash

    return xxhash.xxh64_intdigest(text.encode("utf-8"))


def child_datatrove(in_dir: str, work: str) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.logging import logger
    from datatrove.utils.word_tokenizers import WordTokenizer

    class Whitespace(WordTokenizer):
        def word_tokenize(self, text: str) -> list[str]:
            return text.split()

        def sent_tokenize(self, text: str) -> list[str]:
            return [text]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return [(0, len(text))]

    logger.remove()
    w = Path(work)
    config = MinhashConfig(
        n_grams=NGRAM,
        num_buckets=N_BUCKETS,
        hashes_per_bucket=ROWS,
        seed=SEED,
        hash_config=HashConfig(precision=64, hash_fc="xxhash"),
    )
    sig = MinhashDedupSignature(output_folder=str(w / "sigs"), config=config, language=Whitespace())
    sig._hash_func = _dt_xxh64  # see the module docstring
    stages = [
        ([ParquetReader(in_dir), sig], 1),
        ([MinhashDedupBuckets(str(w / "sigs"), str(w / "buckets"), config=config)], N_BUCKETS),
        ([MinhashDedupCluster(str(w / "buckets"), str(w / "remove"), config=config)], 1),
        (
            [
                ParquetReader(in_dir),
                MinhashDedupFilter(str(w / "remove")),
                ParquetWriter(str(w / "out")),
            ],
            1,
        ),
    ]
    t0 = time.perf_counter()
    for k, (pipeline, tasks) in enumerate(stages):
        LocalPipelineExecutor(
            pipeline, tasks=tasks, workers=1, logging_dir=str(w / f"logs{k}")
        ).run()
    secs = time.perf_counter() - t0
    import resource

    return {
        "seconds": secs,
        "self_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(args: list[str]) -> tuple[dict, float]:
    """Run this script as a child; return (its JSON result, peak RSS MB of its tree)."""
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(
            [sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=err, text=True
        )
        out = p.stdout.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip().splitlines()[-15:]
            raise RuntimeError(f"child {args[:2]} failed:\n" + "\n".join(tail))
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024


# ---- the parent ----


def kept_ids_vloom(out_dir: Path) -> set[str]:
    import pyarrow.parquet as pq

    ids: set[str] = set()
    for f in sorted(out_dir.glob("*.parquet")):
        ids.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    return ids


def kept_ids_datatrove(out_dir: Path) -> set[str]:
    import pyarrow.parquet as pq

    ids: set[str] = set()
    for f in sorted(out_dir.rglob("*.parquet")):
        ids.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    return ids


def score(labels: dict, kept: set[str]) -> str:
    from vloom.curate.dedup.scoring import score_dedup
    from vloom.doc import Document

    docs = [
        Document(id=i, texts=[""], images=[None], metadata={"duplicate_of": d} if d else {})
        for i, d in labels.items()
    ]
    s = score_dedup(docs, kept)
    return f"precision {s.precision:.4f} recall {s.recall:.4f} (removed {s.removed})"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="synthetic documents")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--docs", type=Path, help="an ingested corpus (Parquet shards) instead")
    ap.add_argument("--million", action="store_true", help="vloom alone on 1,000,000 docs")
    ap.add_argument(
        "--world",
        type=int,
        metavar="N",
        help="score exact and minhash dedup on a generated synthetic world of ~N documents",
    )
    ap.add_argument(
        "--workers", type=int, default=None, help="vloom workers (default 1; 2 for --million)"
    )
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it")
    ap.add_argument(
        "--arrow-pool",
        choices=["default", "system", "jemalloc", "mimalloc"],
        default="default",
        help="pyarrow memory pool for BOTH children (ARROW_DEFAULT_MEMORY_POOL)",
    )
    ap.add_argument("--_child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args._child:
        kind, *rest = args._child
        if kind == "vloom":
            print(json.dumps(child_vloom(rest[0], rest[1], int(rest[2]))))
        else:
            print(json.dumps(child_datatrove(rest[0], rest[1])))
        return

    if args.arrow_pool != "default":
        os.environ["ARROW_DEFAULT_MEMORY_POOL"] = args.arrow_pool  # inherited by both children
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="vloom-minhash-bench-"))
    try:
        if args.million:
            _million(root, args)
        elif args.world:
            _world(root, args)
        else:
            _compare(root, args)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def _million(root: Path, args) -> None:
    n = 1_000_000
    workers = args.workers or 2
    t0 = time.perf_counter()
    labels = write_corpus(synth_docs(n, args.seed, 20, 60), root / "in", None, shard_size=SHARD)
    print(f"wrote {n} short documents (20-60 words) in {time.perf_counter() - t0:.0f} s")
    res, rss = run_child(["--_child", "vloom", str(root / "in"), str(root / "out"), str(workers)])
    kept = kept_ids_vloom(root / "out")
    print(
        f"vloom minhash_dedup, 1,000,000 docs, workers={workers}: {res['seconds']:.0f} s "
        f"({n / res['seconds']:.0f} docs/s), peak RSS of the driver {res['self_rss_mb']:.0f} MB "
        f"(largest process {rss:.0f} MB; a worker's ru_maxrss starts from the driver's RSS "
        "at fork, so per-worker peaks are not separable here)"
    )
    print(f"  vs planted duplicates: {score(labels, kept)}")


def _world(root: Path, args) -> None:
    """Precision/recall against the world's own labels (synth noise), several settings."""
    from vloom.config import config_from_dict
    from vloom.curate.dedup.exact import ExactDedup
    from vloom.curate.dedup.minhash import MinHashDedup
    from vloom.curate.dedup.scoring import score_dedup
    from vloom.curate.executor import run_steps
    from vloom.doc import read_documents
    from vloom.synth import generate

    n = args.world
    raw = {
        "name": "world",
        "seed": args.seed,
        "synth": {"n_interleaved": n // 4, "n_pairs": n // 2, "n_text": n // 4},
    }
    cfg = config_from_dict(raw)
    generate(cfg.synth, root / "synth", cfg.seed)
    docs = list(read_documents(root / "synth" / "train"))
    runs = [
        ("exact_dedup", ExactDedup(), False),
        ("minhash_dedup (defaults: 5-grams, 14x8)", MinHashDedup(), False),
        ("minhash_dedup 3-grams, 14x8", MinHashDedup(ngram=3), False),
        ("minhash_dedup 5-grams, 20x5", MinHashDedup(num_perm=100, bands=20, rows=5), False),
        ("minhash_dedup text-only (datatrove rule)", MinHashDedup(match_images=False), True),
    ]
    print(f"generated world: {len(docs)} training documents (seed {args.seed})")
    for name, step, text_only in runs:
        t0 = time.perf_counter()
        kept, _ = run_steps(docs, [step])
        secs = time.perf_counter() - t0
        s = score_dedup(docs, [d.id for d in kept], text_only=text_only)
        print(f"  {s.line(name)} [{secs:.1f} s]")


def _compare(root: Path, args) -> None:
    if args.docs:
        labels = corpus_from_dir(args.docs, root / "in", root / "flat")
    else:
        labels = write_corpus(synth_docs(args.n, args.seed), root / "in", root / "flat", SHARD)
    n = len(labels)
    workers = args.workers or 1
    v, v_rss = run_child(["--_child", "vloom", str(root / "in"), str(root / "out"), str(workers)])
    v_kept = kept_ids_vloom(root / "out")
    try:
        d, d_rss = run_child(["--_child", "datatrove", str(root / "flat"), str(root / "dt")])
    except ImportError:
        print("datatrove is not installed (pip install 'vloom[bench]'); vloom alone:")
        d = None
    except RuntimeError as e:
        print(f"datatrove did not run: {e}")
        d = None
    v_rate = n / v["seconds"]
    print(f"documents: {n} ({'--docs ' + str(args.docs) if args.docs else 'synthetic'})")
    print(
        f"vloom minhash_dedup (workers={workers}): {v_rate:9.0f} docs/s  "
        f"peak RSS {v_rss:6.0f} MB  kept {len(v_kept)}  {score(labels, v_kept)}"
    )
    if d is None:
        return
    d_kept = kept_ids_datatrove(root / "dt" / "out")
    d_rate = n / d["seconds"]
    print(
        f"datatrove MinHash (4 stages):        {d_rate:9.0f} docs/s  "
        f"peak RSS {d_rss:6.0f} MB  kept {len(d_kept)}  {score(labels, d_kept)}"
    )
    agree = sum((i in v_kept) == (i in d_kept) for i in labels) / n
    print(
        f"ratios vloom/datatrove: throughput {v_rate / d_rate:.2f}x, "
        f"peak RSS {v_rss / d_rss:.2f}x; same keep/drop decision on {agree:.2%} of documents "
        f"({len(v_kept - d_kept)} kept only by vloom, {len(d_kept - v_kept)} only by datatrove)"
    )


if __name__ == "__main__":
    main()
