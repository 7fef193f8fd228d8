"""Noise injection: every defect is labelled, counted, reproducible and really defective."""

import io
import random
from collections import Counter

import pytest
from PIL import Image

from vloom.config import NoiseConfig
from vloom.doc import Document
from vloom.synth.noise import KINDS, inject_noise

PROSE = (
    "The red circle sits to the left of the blue square, and the green triangle is above them. "
    "Each shape has a solid colour and a clear edge, which makes the picture easy to describe."
)


def png(colour: tuple[int, int, int], size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="PNG")
    return buf.getvalue()


def corpus(n: int = 100) -> list[Document]:
    docs = []
    for i in range(n):
        items: list[str | bytes] = [f"Document {i}. {PROSE}"]
        if i % 2 == 0:  # half the documents carry two images
            items += [png((i, 0, 0)), "Caption one.", png((0, i, 0)), "Caption two."]
        docs.append(Document.from_items(f"d{i}", items))
    return docs


CFG = NoiseConfig(
    exact_duplicate=0.05,
    near_duplicate=0.05,
    spam=0.05,
    foreign_language=0.03,
    broken_image=0.02,
    tiny_image=0.02,
    unrelated_image=0.02,
)


def decodes(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
        return True
    except Exception:
        return False


def test_counts_labels_and_unique_ids():
    clean = corpus(100)
    out = inject_noise(clean, CFG, random.Random(0))
    counts = Counter(d.metadata.get("defect") for d in out)
    assert counts == {
        None: 100,
        "exact_duplicate": 5,
        "near_duplicate": 5,
        "spam": 5,
        "foreign_language": 3,
        "broken_image": 2,
        "tiny_image": 2,
        "unrelated_image": 2,
    }
    assert set(counts) - {None} == set(KINDS)
    assert len({d.id for d in out}) == len(out)
    # clean documents come back unchanged (and carry no label)
    by_id = {d.id: d for d in out}
    for d in clean:
        assert by_id[d.id] == d and "defect" not in d.metadata


def test_deterministic_given_the_seed_and_shuffled():
    a = inject_noise(corpus(60), CFG, random.Random(3))
    b = inject_noise(corpus(60), CFG, random.Random(3))
    c = inject_noise(corpus(60), CFG, random.Random(4))
    assert a == b
    assert [d.id for d in a] != [d.id for d in c]
    assert [d.id for d in a][:60] != [f"d{i}" for i in range(60)]


def test_each_defect_is_what_it_says():
    clean = corpus(100)
    by_id = {d.id: d for d in clean}
    out = inject_noise(clean, CFG, random.Random(1))
    for d in out:
        kind = d.metadata.get("defect")
        if kind is None:
            continue
        src = by_id[d.metadata.get("duplicate_of") or d.metadata["source_of"]]
        if kind == "exact_duplicate":
            assert (d.texts, d.images) == (src.texts, src.images) and d.id != src.id
        elif kind == "near_duplicate":
            assert d.images == src.images and d.text != src.text
            changed = sum(a != b for a, b in zip(d.text.split(), src.text.split(), strict=False))
            assert 1 <= changed <= 8
        elif kind == "spam":
            assert d.n_images == 0 and "All rights reserved" in d.text
        elif kind == "foreign_language":
            assert d.metadata["true_language"] in {"fr", "de", "es"} and d.language == "en"
            assert " the " not in d.text and d.images == src.images
        else:
            assert src.n_images > 0, "image defects only use documents with images"
            changed = [
                i for i, (a, b) in enumerate(zip(d.images, src.images, strict=True)) if a != b
            ]
            assert len(changed) == 1 and d.texts == src.texts
            new = d.images[changed[0]]
            if kind == "broken_image":
                assert not decodes(new)
            elif kind == "tiny_image":
                assert Image.open(io.BytesIO(new)).size == (2, 2)
            else:
                others = {im for o in clean if o.id != src.id for im in o.images if im}
                assert new in others


def test_zero_shares_add_nothing():
    zero = NoiseConfig(**{k: 0.0 for k in KINDS})
    clean = corpus(20)
    assert sorted(d.id for d in inject_noise(clean, zero, random.Random(0))) == sorted(
        d.id for d in clean
    )


@pytest.mark.parametrize("kind", ["broken_image", "tiny_image", "unrelated_image"])
def test_image_defects_skip_text_only_corpus(kind):
    docs = [Document.from_items(f"t{i}", [PROSE]) for i in range(20)]
    cfg = NoiseConfig(**{k: (0.5 if k == kind else 0.0) for k in KINDS})
    assert len(inject_noise(docs, cfg, random.Random(0))) == 20
