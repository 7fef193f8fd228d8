"""paragraph_dedup: BFF-style paragraph removal, document threshold, shards and workers."""

import random

import numpy as np
import pytest
from shapes import prose, shape_png

from vloom.config import CurateConfig, StepConfig
from vloom.curate import CurateError, build_step, run_curate, run_steps
from vloom.curate.dedup.paragraph import Bloom, ParagraphDedup, bloom_bits
from vloom.doc import Document, read_documents, write_shard

BOILER = "Subscribe to our newsletter for more shapes every week"
FOOTER = "Copyright 2024 The Shape Society, all rights reserved"


def page(i: int, rng: random.Random, boiler: bool = True) -> Document:
    lines = [prose(rng, 2), prose(rng, 2)]
    if boiler:
        lines = [BOILER] + lines + [FOOTER]
    return Document.from_items(f"p{i}", ["\n".join(lines)])


def test_repeated_paragraphs_removed_after_first_occurrence():
    rng = random.Random(0)
    docs = [page(i, rng) for i in range(4)]
    kept, led = run_steps(docs, [ParagraphDedup()])
    assert [d.id for d in kept] == ["p0", "p1", "p2", "p3"]
    assert BOILER in kept[0].texts[0] and FOOTER in kept[0].texts[0]
    for d, orig in zip(kept[1:], docs[1:], strict=True):
        assert BOILER not in d.texts[0] and FOOTER not in d.texts[0]
        assert d.texts[0] == "\n".join(orig.texts[0].split("\n")[1:3])  # unique prose stays
    assert not led.dropped
    assert docs[1].texts[0].startswith(BOILER)  # input documents are not modified


def test_case_and_spacing_do_not_hide_a_repeat_and_short_lines_stay():
    a = Document.from_items("a", [f"{BOILER}\nFigure 1.\n{prose(random.Random(1), 3)}"])
    b = Document.from_items("b", [f"{BOILER.upper()}   \nFigure 1.\n{prose(random.Random(2), 3)}"])
    kept, _ = run_steps([a, b], [ParagraphDedup()])
    assert kept[1].texts[0].startswith("Figure 1.\n")  # short line never removed


def test_mostly_duplicate_document_dropped_and_threshold_is_a_parameter():
    rng = random.Random(3)
    body = [prose(rng, 2) for _ in range(5)]
    a = Document.from_items("a", ["\n".join(body)])
    b = Document.from_items("b", ["\n".join(body[:4] + [prose(rng, 2)])])  # 80%+ repeated
    kept, led = run_steps([a, b], [ParagraphDedup()])
    assert [d.id for d in kept] == ["a"]
    assert led.dropped["paragraph_dedup"] == {"mostly_duplicate_paragraphs": 1}
    kept, led = run_steps([a, b], [ParagraphDedup(max_duplicate_fraction=1.0)])
    assert [d.id for d in kept] == ["a", "b"]
    assert kept[1].texts == [b.texts[0].split("\n")[-1]]  # only the new paragraph is left


def test_images_stay_and_emptied_text_items_go():
    rng = random.Random(4)
    img = shape_png(rng)
    first = Document.from_items("a", [BOILER, shape_png(rng), prose(rng, 4)])
    second = Document.from_items("b", [BOILER, img, prose(rng, 4)])
    kept, _ = run_steps([first, second], [ParagraphDedup()])
    b = kept[1]
    assert b.images == [img, None] and b.texts[0] is None and BOILER not in b.texts[1]
    b.validate()


def test_image_docs_can_be_skipped():
    rng = random.Random(5)
    caption = prose(rng, 2)
    pairs = [Document.from_items(f"pair{i}", [shape_png(rng), caption]) for i in range(3)]
    kept, led = run_steps(pairs, [ParagraphDedup()])
    assert [d.id for d in kept] == ["pair0"]  # the caption alone was the text: all repeated
    kept, led = run_steps(pairs, [ParagraphDedup(skip_image_docs=True)])
    assert len(kept) == 3 and not led.dropped


def test_across_shards_same_with_one_or_two_workers_as_in_memory(tmp_path):
    rng = random.Random(6)
    docs = [page(i, rng, boiler=i % 3 != 0) for i in range(12)]
    for s in range(3):
        write_shard(tmp_path / "in" / f"part-{s}.parquet", docs[s * 4 : (s + 1) * 4])
    expected, _ = run_steps(docs, [ParagraphDedup()])
    for workers in (1, 2):
        cfg = CurateConfig(steps=[StepConfig(name="paragraph_dedup")], workers=workers)
        led = run_curate(tmp_path / "in", tmp_path / f"out{workers}", cfg, quiet=True)
        got = list(read_documents(tmp_path / f"out{workers}"))
        assert [(d.id, d.texts) for d in got] == [(d.id, d.texts) for d in expected]
        assert (
            led.extra["step_stats"]["paragraph_dedup"]["paragraphs_removed"] == (8 - 1) * 2
        )  # 8 pages carry both lines
    assert BOILER in got[1].texts[0]  # p0 has none: p1 holds the first copy


def test_empty_and_text_free_documents_pass():
    docs = [
        Document.from_items("e", [""]),
        Document.from_items("i", [shape_png(random.Random(7))]),
        Document.from_items("e2", [""]),
    ]
    kept, led = run_steps(docs, [ParagraphDedup()])
    assert [d.id for d in kept] == ["e", "i", "e2"] and not led.dropped


def test_bloom_filter_size_and_false_positive_rate():
    bits, k = bloom_bits(10_000, 0.01)
    assert 95_000 < bits < 97_000 and k == 7
    rng = np.random.default_rng(0)
    bloom = Bloom(bits, k)
    keys = rng.integers(0, 2**63, size=(10_000, 2), dtype=np.uint64)
    bloom.add(keys)
    assert bloom.contains(keys).all()
    other = rng.integers(0, 2**63, size=(20_000, 2), dtype=np.uint64)
    assert bloom.contains(other).mean() < 0.02


@pytest.mark.parametrize(
    "params, match",
    [
        ({"fp_rate": 1.5}, "fp_rate"),
        ({"min_chars": 0}, "min_chars"),
        ({"max_duplicate_fraction": 2}, "max_duplicate_fraction"),
        ({"expected_items": "many"}, "expected_items"),
    ],
)
def test_bad_parameters_are_one_line_errors(params, match):
    with pytest.raises(CurateError, match=match) as e:
        build_step(StepConfig(name="paragraph_dedup", **params))
    assert "\n" not in str(e.value)
