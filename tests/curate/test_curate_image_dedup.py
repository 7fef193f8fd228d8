"""image_dedup: perceptual hashes of rendered scenes, copies found, policies, bad bytes."""

import io
import random

import numpy as np
import pytest
from PIL import Image

from vloom.config import CurateConfig, StepConfig
from vloom.curate import CurateError, build_step, run_curate, run_steps
from vloom.curate.dedup.image_dedup import ImageDedup, duplicate_mask, hamming, near_pairs, phash
from vloom.doc import Document, read_documents, write_shard
from vloom.synth.world import BACKGROUND, png_bytes, render, sample_scene


def scenes(n: int, size: int, seed: int) -> list[Image.Image]:
    rng = random.Random(seed)
    return [render(sample_scene(rng), size) for _ in range(n)]


def jpeg(img: Image.Image, quality: int = 75) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def shifted(img: Image.Image, d: int) -> Image.Image:
    out = Image.new("RGB", img.size, BACKGROUND)
    out.paste(img, (d, d))
    return out


def found_share(originals: list[Image.Image], copies: list[bytes], **params) -> float:
    """Share of copies (placed after all originals) that image_dedup takes out."""
    docs = [
        Document.from_items(f"o{i}", [png_bytes(im), "a scene"]) for i, im in enumerate(originals)
    ]
    docs += [Document.from_items(f"c{i}", [c, "a copy"]) for i, c in enumerate(copies)]
    kept, _ = run_steps(docs, [ImageDedup(**params)])
    return sum(d.n_images == 0 for d in kept[len(originals) :]) / len(copies)


def test_recompressed_and_rescaled_copies_found():
    orig = scenes(60, 64, seed=0)
    assert found_share(orig, [jpeg(im) for im in orig]) >= 0.95
    small = [png_bytes(im.resize((48, 48), Image.Resampling.BICUBIC)) for im in orig]
    assert found_share(orig, small) >= 0.95


def test_shifted_copies_found_with_a_wider_threshold():
    # pHash is not shift-invariant: a 1-pixel shift of a 256-pixel render plus JPEG moved
    # up to 8 bits when measured (see the module docstring), so the threshold is raised
    orig = scenes(40, 256, seed=1)
    copies = [jpeg(shifted(im, 1)) for im in orig]
    assert found_share(orig, copies, max_distance=10) >= 0.9
    assert found_share(orig, copies) < found_share(orig, copies, max_distance=10)


def test_different_scenes_rarely_merged():
    imgs = scenes(200, 64, seed=2)
    docs = [Document.from_items(f"d{i}", [png_bytes(im)]) for i, im in enumerate(imgs)]
    kept, led = run_steps(docs, [ImageDedup()])
    # scenes of one or two small shapes can look alike at 8x8 frequencies: measured
    # ~0.1% of distinct-scene pairs within 4 bits, which merges a few % of 200 scenes;
    # renders of the same scene (same shapes, colours, cells; other jitter) may merge
    keys: dict = {}
    rng = random.Random(2)
    for i in range(200):
        keys.setdefault(sample_scene(rng).key(), []).append(i)
    same_scene_copies = sum(len(v) - 1 for v in keys.values())
    assert 200 - len(kept) - same_scene_copies <= 10, (len(kept), same_scene_copies)


def test_policies_remove_image_or_drop_pair():
    img = scenes(2, 64, seed=3)
    a = Document.from_items("a", [png_bytes(img[0]), "first caption"])
    pair = Document.from_items("pair", [jpeg(img[0]), "second caption"])
    multi = Document.from_items("multi", ["intro", jpeg(img[0]), "mid", png_bytes(img[1])])
    kept, led = run_steps([a, pair, multi], [ImageDedup()])
    assert [d.id for d in kept] == ["a", "pair", "multi"]
    assert kept[1].texts == ["second caption"] and kept[1].images == [None]
    assert kept[2].texts == ["intro", "mid", None] and kept[2].n_images == 1
    kept, led = run_steps([a, pair, multi], [ImageDedup(policy="drop_pair")])
    assert [d.id for d in kept] == ["a", "multi"]
    assert led.dropped["image_dedup"] == {"duplicate_image": 1}
    assert kept[1].n_images == 1
    # a document of one duplicate image and nothing else is dropped under either policy
    kept, led = run_steps([a, Document.from_items("bare", [jpeg(img[0])])], [ImageDedup()])
    assert [d.id for d in kept] == ["a"] and led.dropped["image_dedup"]["duplicate_image"] == 1


def test_undecodable_images_counted_not_crashed_on(tmp_path):
    img = scenes(1, 64, seed=4)[0]
    good = png_bytes(img)
    docs = [
        Document.from_items("bad1", [b"\x89PNG\r\n\x1a\nnot really", "text"]),
        Document.from_items("bad2", [b"\x89PNG\r\n\x1a\nnot really", "text"]),
        Document.from_items("good", [good, "text"]),
        Document.from_items("copy", [good, "text"]),
    ]
    write_shard(tmp_path / "in" / "a.parquet", docs[:2])
    write_shard(tmp_path / "in" / "b.parquet", docs[2:])
    for workers in (1, 2):
        cfg = CurateConfig(steps=[StepConfig(name="image_dedup")], workers=workers)
        led = run_curate(tmp_path / "in", tmp_path / f"out{workers}", cfg, quiet=True)
        out = {d.id: d for d in read_documents(tmp_path / f"out{workers}")}
        assert set(out) == {"bad1", "bad2", "good", "copy"}
        assert out["bad2"].n_images == 1 and out["copy"].n_images == 0
        assert led.extra["step_stats"]["image_dedup"] == {
            "undecodable_images": 2,
            "images_removed": 1,
        }


def test_near_pairs_matches_brute_force():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, size=300, dtype=np.uint64)
    flips = np.uint64(1) << rng.integers(0, 64, size=(300, 3)).astype(np.uint64)
    noisy = base ^ flips[:, 0] ^ flips[:, 1] ^ flips[:, 2]  # 1..3 bits away
    h = np.unique(np.concatenate([base, noisy]))
    i, j = near_pairs(h, 4)
    d = hamming(h[:, None], h[None, :])
    bi, bj = np.nonzero(np.triu(d <= 4, 1))
    assert sorted(zip(i.tolist(), j.tolist(), strict=True)) == sorted(
        zip(bi.tolist(), bj.tolist(), strict=True)
    )
    # first occurrence kept, later near copies and exact repeats marked, invalid never
    h2 = np.array([5, 7, 5, 2**40, 0], dtype=np.uint64)
    valid = np.array([True, True, True, True, False])
    assert duplicate_mask(h2, valid, 2).tolist() == [False, True, True, False, False]


def test_phash_is_64_bits_and_deterministic():
    img = scenes(1, 64, seed=5)[0]
    assert phash(img) == phash(img.copy()) and 0 < phash(img) < 2**64


@pytest.mark.parametrize(
    "params, match",
    [
        ({"max_distance": 40}, "max_distance"),
        ({"hash": "md5"}, "hash"),
        ({"policy": "delete"}, "policy"),
    ],
)
def test_bad_parameters_are_one_line_errors(params, match):
    with pytest.raises(CurateError, match=match) as e:
        build_step(StepConfig(name="image_dedup", **params))
    assert "\n" not in str(e.value)
