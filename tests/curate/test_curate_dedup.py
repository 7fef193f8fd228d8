import copy

from shapes import clean_docs

from vloom.config import CurateConfig, StepConfig
from vloom.curate import run_curate, run_steps
from vloom.curate.dedup.exact import ExactDedup, doc_signature
from vloom.doc import Document, read_documents, write_shard


def dup(doc: Document, new_id: str) -> Document:
    d = copy.deepcopy(doc)
    d.id = new_id
    return d


def test_signature_normalises_case_and_whitespace_only():
    a = Document.from_items("a", ["The red  circle\nis here."])
    b = Document.from_items("b", ["the RED circle is   here."])
    c = Document.from_items("c", ["the red circle is here"])
    assert doc_signature(a) == doc_signature(b)
    assert doc_signature(a) != doc_signature(c)  # punctuation still counts


def test_signature_covers_images_in_order():
    a = Document.from_items("a", ["x", b"img1", b"img2"])
    b = Document.from_items("b", ["x", b"img2", b"img1"])
    c = Document.from_items("c", ["x", b"img1", b"img3"])
    assert len({doc_signature(a), doc_signature(b), doc_signature(c)}) == 3


def test_in_memory_dedup_keeps_first_occurrence():
    docs = clean_docs(5, seed=1)
    stream = docs[:3] + [dup(docs[1], "copy1"), docs[3], dup(docs[0], "copy0"), docs[4]]
    kept, led = run_steps(stream, [ExactDedup()])
    assert [d.id for d in kept] == [d.id for d in docs]
    assert led.dropped["exact_dedup"]["duplicate"] == 2
    led.check()


def _sharded_corpus(root):
    """Three shards; duplicates within a shard and across shards, in both directions."""
    docs = clean_docs(12, seed=2)
    shards = [
        docs[0:4] + [dup(docs[1], "s0-dup-of-1")],
        [dup(docs[2], "s1-dup-of-2")] + docs[4:8] + [dup(docs[5], "s1-dup-of-5")],
        [dup(docs[7], "s2-dup-of-7"), dup(docs[2], "s2-dup-of-2")] + docs[8:12],
    ]
    in_dir = root / "in"
    for i, s in enumerate(shards):
        write_shard(in_dir / f"part-{i:02d}.parquet", s)
    return in_dir, [d.id for d in docs]


def test_dedup_across_shards_keeps_first_occurrences(tmp_path):
    in_dir, originals = _sharded_corpus(tmp_path)
    cfg = CurateConfig(steps=[StepConfig(name="exact_dedup")])
    led = run_curate(in_dir, tmp_path / "out", cfg, quiet=True)
    kept = [d.id for d in read_documents(tmp_path / "out")]
    assert kept == originals
    assert led.input == 17 and led.kept == 12 and led.dropped["exact_dedup"]["duplicate"] == 5


def test_dedup_identical_with_one_and_two_workers(tmp_path):
    in_dir, _ = _sharded_corpus(tmp_path)
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        cfg = CurateConfig(
            steps=[StepConfig(name="gopher_quality"), StepConfig(name="exact_dedup")],
            workers=workers,
        )
        run_curate(in_dir, out, cfg, quiet=True)
        outs.append(out)
    names = sorted(p.name for p in outs[0].glob("*.parquet"))
    assert names == [f"part-{i:02d}.parquet" for i in range(3)]
    for name in names + ["ledger.json"]:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
