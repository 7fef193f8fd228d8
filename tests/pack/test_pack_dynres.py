"""Dynamic resolution in pack: smart resize, patchify, variable-size image blocks in shards."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from tinyexp import tiny_config

from vloom.config import ConfigError, VisionConfig
from vloom.doc import Document, write_shard
from vloom.imagebatch import ImageBatch, join_images, patchify, unpatchify
from vloom.ledger import Ledger
from vloom.media import ImageError
from vloom.pack import PackedStream, run_pack
from vloom.pack.images import max_image_tokens, prepare_image, smart_resize
from vloom.sequence import IMAGE_ID, PAD_ID

P, M, F = 8, 2, 16  # patch, merge, factor = patch * merge
DYN = VisionConfig(
    resolution="dynamic", patch_size=P, merge=M, min_pixels=32 * 32, max_pixels=96 * 96
)


def _png(w: int, h: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("aspect", [(1, 1), (4, 3), (1, 2), (5, 2), (3, 7)])
def test_image_tokens_grow_with_area_and_match_the_formula(aspect):
    tokens, areas = [], []
    for k in (2, 5, 9, 13, 17, 21, 25, 30, 40, 60, 120):
        w, h = k * aspect[0], k * aspect[1]
        px, n = prepare_image(_png(w, h), DYN)
        hh, ww = px.shape[:2]
        assert hh % F == 0 and ww % F == 0 and px.dtype == np.uint8
        assert n == (hh // P // M) * (ww // P // M)  # (h/p/2) * (w/p/2)
        assert DYN.min_pixels <= hh * ww <= DYN.max_pixels
        tokens.append(n)
        areas.append(w * h)
    assert tokens == sorted(tokens), (aspect, tokens)  # monotone in area
    assert tokens[-1] > tokens[0]  # and it does grow: small images up to the budget
    assert tokens[-1] <= max_image_tokens(DYN, 32)


@pytest.mark.parametrize(
    "w,h", [(100, 100), (160, 90), (90, 160), (50, 40), (300, 200), (41, 97), (640, 480), (20, 35)]
)
def test_aspect_ratio_is_kept_within_rounding(w, h):
    hh, ww = smart_resize(h, w, F, 32 * 32, 96 * 96)
    # Each side is the scaled original rounded to a multiple of F (at most F away), so the
    # original aspect lies inside what that rounding allows.
    assert (hh - F) / (ww + F) <= h / w <= (hh + F) / (ww - F)
    # Rounding to nearest puts each side within F/2 of a common scaling of the original.
    assert (hh - F / 2) / (ww + F / 2) <= h / w <= (hh + F / 2) / (ww - F / 2)


def test_thin_images_stay_within_the_budget_and_extreme_ones_are_rejected():
    hh, ww = smart_resize(16, 1000, F, 32 * 32, 96 * 96)
    assert hh == F and ww % F == 0 and hh * ww <= 96 * 96
    with pytest.raises(ImageError) as e:
        smart_resize(2, 1000, F, 32 * 32, 96 * 96)
    assert e.value.reason == "extreme_aspect_ratio"
    with pytest.raises(ImageError) as e:
        prepare_image(b"\x89PNG\r\n\x1a\n not really", DYN)
    assert e.value.reason == "undecodable_image"


def test_fixed_mode_is_the_square_resize():
    fixed = VisionConfig(patch_size=P, merge=M)
    px, n = prepare_image(_png(50, 20), fixed, 32)
    assert px.shape == (32, 32, 3) and n == 4
    with pytest.raises(ValueError, match="need image_size"):
        prepare_image(_png(50, 20), fixed)
    # A whole experiment config picks its model's mode and pack.image_size.
    assert prepare_image(_png(50, 20), tiny_config())[0].shape == (32, 32, 3)
    dyn = tiny_config(model__vision__resolution="dynamic")
    assert prepare_image(_png(50, 20), dyn)[0].shape == (32, 64, 3)  # aspect kept: wide


def test_patchify_round_trips_in_merge_window_order():
    img = torch.arange(32 * 48 * 3, dtype=torch.int64).reshape(32, 48, 3) % 251
    patches = patchify(img.to(torch.uint8), P, M)
    assert patches.shape == ((32 // P) * (48 // P), P * P * 3)
    assert torch.equal(unpatchify(patches, (4, 6), P, M), img.to(torch.uint8))
    # The first merge x merge patches are the top-left window, row-major inside it.
    first = patches[: M * M].reshape(M, M, P, P, 3).permute(0, 2, 1, 3, 4).reshape(M * P, M * P, 3)
    assert torch.equal(first, img[: M * P, : M * P].to(torch.uint8))
    with pytest.raises(ValueError, match="not a multiple"):
        patchify(torch.zeros(20, 32, 3, dtype=torch.uint8), P, M)


def test_join_images_keeps_order_and_sizes():
    a = torch.zeros(1, 32, 48, 3, dtype=torch.uint8)
    b = torch.ones(2, 16, 16, 3, dtype=torch.uint8)
    j = join_images([a, None, b], P, M)
    assert isinstance(j, ImageBatch) and j.grids.tolist() == [[4, 6], [2, 2], [2, 2]]
    assert j.patch_counts == [24, 4, 4] and int(j.patches[:24].max()) == 0
    assert join_images([b, b]).shape == (4, 16, 16, 3)  # same size: one stacked tensor
    with pytest.raises(ValueError, match="dynamic resolution"):
        join_images([a, b])


def _mixed_docs(n: int) -> list[Document]:
    prose = "The red circle is at the top left of the picture and the blue square is below it."
    rng = np.random.default_rng(0)
    docs = []
    for i in range(n):
        sizes = [(int(rng.integers(12, 140)), int(rng.integers(12, 140))) for _ in range(2)]
        items = [prose, _png(*sizes[0], seed=i), "Below it:", _png(*sizes[1], seed=100 + i)]
        docs.append(Document.from_items(f"d{i}", items, source="mixed"))
    return docs


def _runs_are_whole_blocks(runs: list[int], blocks: list[int]) -> bool:
    blocks = list(blocks)
    for run in runs:
        while run > 0 and blocks:
            run -= blocks.pop(0)
        if run != 0:
            return False
    return not blocks


def _dyn_cfg(**kw):
    base = dict(
        pack__vocab_size=300,
        pack__tokenizer_docs=20,
        pack__seq_len=64,
        model__vision__resolution="dynamic",
        model__vision__min_pixels=32 * 32,
        model__vision__max_pixels=64 * 64,
    )
    base.update(kw)
    return tiny_config(**base)


def test_pack_stores_variable_size_images_and_pads_within_the_bound(tmp_path):
    docs = _mixed_docs(24)
    docs.append(Document.from_items("corrupt", [b"\x89PNG\r\n\x1a\n bad", "text"]))
    docs.append(Document.from_items("sliver", ["a 1-pixel line", _png(500, 2)]))
    write_shard(tmp_path / "in" / "a.parquet", docs)
    cfg = _dyn_cfg()
    stats = run_pack(tmp_path / "in", tmp_path / "out", cfg, quiet=True)
    led = Ledger.read(tmp_path / "out")
    assert led.input == 26 and led.kept == 24
    assert dict(led.rejected) == {"undecodable_image": 1, "extreme_aspect_ratio": 1}
    assert stats["resolution"] == "dynamic" and stats["images"] == 48
    it = stats["image_tokens"]
    assert 1 <= it["min"] < it["max"] <= it["bound"] == 16  # sizes really vary

    vc = cfg.model.vision
    expected = [prepare_image(d.images[i], vc)[0] for d in docs[:24] for i in (1, 3)]
    s = PackedStream(tmp_path / "out", "image", 0)
    seen, row_len = [], cfg.pack.seq_len + 1
    k_max = max_image_tokens(vc, cfg.pack.image_size)
    for r in range(len(s)):
        tokens, images = s.row(r)
        assert isinstance(images, ImageBatch)
        is_img = (tokens[:-1] == IMAGE_ID).astype(int)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], is_img, [0]])))
        runs = list(edges[1::2] - edges[::2])
        n_tok = [h * w // (M * M) for h, w in images.grids.tolist()]
        # each run of image tokens is one or more whole blocks, in order (blocks may touch)
        assert _runs_are_whole_blocks(runs, n_tok), (runs, n_tok)
        start = 0
        for (gh, gw), n in zip(images.grids.tolist(), images.patch_counts, strict=True):
            seen.append(unpatchify(images.patches[start : start + n], (gh, gw), P, M).numpy())
            start += n
        if r < len(s) - 1:  # the packer's padding only: below one image block per row
            assert int((tokens == PAD_ID).sum()) <= k_max
    # storage order is document order: every image round-trips through the shard
    assert len(seen) == len(expected)
    assert all(np.array_equal(a, b) for a, b in zip(seen, expected, strict=True))
    n_rows = sum(stats["sequences"].values())
    assert stats["pad_fraction"] <= k_max / row_len + 2 / n_rows


def test_budget_larger_than_a_row_is_a_clear_error(tmp_path):
    write_shard(tmp_path / "in" / "a.parquet", _mixed_docs(2))
    cfg = _dyn_cfg(model__vision__max_pixels=256 * 256)
    with pytest.raises(ValueError, match="model.vision.max_pixels"):
        run_pack(tmp_path / "in", tmp_path / "out", cfg, quiet=True)


def test_dynamic_config_is_validated():
    with pytest.raises(ConfigError, match="max_pixels"):
        tiny_config(model__vision__resolution="dynamic", model__vision__max_pixels=100)
    with pytest.raises(ConfigError, match="divisible by 4"):
        tiny_config(
            model__vision__resolution="dynamic", model__vision__d_model=24, model__vision__n_heads=4
        )
    # fixed stays the default and ignores the dynamic-only fields
    assert tiny_config().model.vision.resolution == "fixed"


def test_fixed_pack_format_is_unchanged(tiny_data):
    stats = json.loads((tiny_data["packed"] / "stats.json").read_text())
    assert stats["resolution"] == "fixed" and stats["image_tokens"]["max"] == 4
    tokens, images = PackedStream(tiny_data["packed"], "image", 0).row(0)
    assert isinstance(images, np.ndarray) and images.shape[1:] == (32, 32, 3)


def test_tokens_never_drop_as_an_image_grows_for_many_aspects_and_budgets():
    for lo, hi, f in ((32 * 32, 96 * 96, 16), (56 * 56, 28 * 28 * 256, 28), (256, 256, 16)):
        for p in range(1, 10):
            for q in range(1, 10):
                prev = 0
                for k in range(1, 300, 3):
                    h, w = smart_resize(k * p, k * q, f, lo, hi)
                    assert lo <= h * w <= hi or h * w == f * f, (h, w)
                    assert h * w >= prev, (p, q, k)
                    prev = h * w
