"""Evaluation under dynamic resolution: every task gives each image its own aspect-kept
pixels and its own number of <image> tokens (as the pack does), batches mixed sizes, and
scores exactly as one example at a time; fixed resolution is unchanged."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from captionextra import need_caption_metrics
from greedyref import manual_greedy
from PIL import Image
from tinyexp import tiny_config

from vloom.evaluate.generation import greedy_generate
from vloom.evaluate.harness import load_checkpoint
from vloom.evaluate.scoring import (
    accuracy_by_type,
    batch_images,
    continuation_logprobs,
    sequence_loss,
)
from vloom.evaluate.tasks import EvalContext, get_task
from vloom.evaluate.tasks.data import answer_text, image_input, pixels
from vloom.imagebatch import ImageBatch, unpatchify
from vloom.model.io import build_model, save_model
from vloom.pack.images import prepare_image
from vloom.sequence import BOS_ID, EOS_ID, IMAGE_ID, encode_text, load_tokenizer

CPU = torch.device("cpu")
# (width, height): wide, tall, square, over the pixel budget; pairs with equal token counts
# but transposed grids (2x3 / 3x2) so equal-length prompts batch different shapes together.
SIZES = [(48, 32), (32, 48), (64, 16), (16, 64), (96, 96), (40, 40), (70, 24), (24, 70), (20, 20)]
VISION_FILES = ("vqa", "vqa_open", "caption_refs", "captions", "multi_image")
TASKS = (
    "vqa",
    "vqa_open",
    "vqa_mc_converted",
    "self_correct",
    "caption_loss",
    "caption_gen",
    "multi_image",
    "vmcbench",
)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _reshaped(data: bytes, k: int) -> bytes:
    w, h = SIZES[k % len(SIZES)]
    return _png(np.array(Image.open(io.BytesIO(data)).convert("RGB").resize((w, h))))


@pytest.fixture(scope="module")
def dyn_eval(tiny_data, tmp_path_factory):
    """The held-out eval files with every image resized to a different aspect ratio."""
    out = tmp_path_factory.mktemp("dyneval")
    k = 0
    for name in VISION_FILES:
        table = pq.read_table(tiny_data["eval"] / f"{name}.parquet")
        rows = table.to_pylist()
        for r in rows:
            if r.get("image") is not None:
                r["image"], k = _reshaped(r["image"], k), k + 1
            if r.get("images") is not None:
                r["images"] = [_reshaped(b, k + j) if b else b for j, b in enumerate(r["images"])]
                k += len(r["images"])
        pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), out / f"{name}.parquet")
    # A VMCBench-shaped file from those VQA rows (the task's default path), one asked as text.
    vqa = pq.read_table(out / "vqa.parquet").to_pylist()
    bench = [
        {
            "question": r["question"],
            **dict(zip("ABCD", r["options"], strict=True)),
            "answer": "ABCD"[r["answer"]],
            "category": r["qtype"],
            "image": None if i == 2 else r["image"],
        }
        for i, r in enumerate(vqa)
    ]
    pq.write_table(pa.Table.from_pylist(bench), out / "vmcbench.parquet")
    return out


@pytest.fixture(scope="module")
def dyn_ctx(tiny_data, dyn_eval, tmp_path_factory) -> EvalContext:
    """A randomly initialised tiny dynamic-resolution model (16-pixel merged patches, 1 to 9
    tokens per image) loaded from a checkpoint like any other."""
    cfg = tiny_config(
        model__vision__resolution="dynamic",
        model__vision__min_pixels=16 * 16,
        model__vision__max_pixels=48 * 48,
    )
    tok_path = tiny_data["packed"] / "tokenizer.json"
    tok = load_tokenizer(str(tok_path))
    torch.set_num_threads(1)  # as rand_ckpt: a loaded shared CPU runs one thread steadier
    torch.manual_seed(0)
    meta = {
        "model": cfg.model.model_dump(mode="json"),
        "vocab_size": tok.get_vocab_size(),
        "max_seq_len": 384,  # the longest multi_image document of the tiny world, with room
        "image_size": cfg.synth.image_size,
    }
    out = tmp_path_factory.mktemp("dynckpt")
    save_model(build_model(meta).eval(), out, {"tokenizer": str(tok_path)})
    model, tok = load_checkpoint(out)
    assert model.vision.dynamic
    return EvalContext(model, tok, dyn_eval, CPU, batch_size=16)


def _key(px: torch.Tensor | np.ndarray) -> tuple:
    a = np.ascontiguousarray(np.asarray(px, dtype=np.uint8))
    return a.shape, hashlib.sha1(a.tobytes()).hexdigest()


def _file_images(path) -> list[bytes]:
    t = pq.read_table(path)
    if "image" in t.column_names:
        return [b for b in t.column("image").to_pylist() if b is not None]
    return [b for bs in t.column("images").to_pylist() for b in bs if b is not None]


def _run_recorded(ctx: EvalContext, task: str) -> tuple[dict, dict]:
    """Run a task and record, for every image the model was fed, the length of the
    <image> run it filled: {pixels key: set of run lengths}."""
    m = ctx.model
    seen: dict[tuple, set[int]] = {}

    def hook(_mod, args):
        tokens, images = args[0], args[1] if len(args) > 1 else None
        if images is None:
            return
        p, mg = m.vision.cfg.patch_size, m.vision.cfg.merge
        if isinstance(images, ImageBatch):
            off = np.cumsum([0, *images.patch_counts])
            ims = [
                unpatchify(images.patches[off[i] : off[i + 1]], tuple(g), p, mg)
                for i, g in enumerate(images.grids.tolist())
            ]
        else:
            ims = list(images)
        it = iter(ims)
        for row in tokens.tolist():
            is_img = np.array(row) == IMAGE_ID
            edges = np.flatnonzero(np.diff(np.r_[0, is_img.astype(int), 0]))
            for a, b in zip(edges[::2], edges[1::2], strict=True):
                seen.setdefault(_key(next(it)), set()).add(int(b - a))
        assert next(it, None) is None, "more images than <image> runs"

    h = m.register_forward_pre_hook(hook)
    try:
        res = get_task(task)(ctx)
    finally:
        h.remove()
    return res, seen


FILE_OF = {
    "vqa": "vqa",
    "vqa_open": "vqa_open",
    "vqa_mc_converted": "vqa_open",
    "self_correct": "vqa_open",
    "caption_loss": "captions",
    "caption_gen": "caption_refs",
    "multi_image": "multi_image",
    "vmcbench": "vmcbench",
}


@pytest.mark.parametrize("task", TASKS)
def test_each_prompt_has_its_own_images_token_count(dyn_ctx, task):
    if task == "caption_gen":
        need_caption_metrics()
    m = dyn_ctx.model
    want = {}
    for b in _file_images(dyn_ctx.data_dir / f"{FILE_OF[task]}.parquet"):
        px, n = prepare_image(b, m.vision.cfg, m.vision.image_size)
        want[_key(px)] = {n}
    assert len({k[0] for k in want}) >= 3  # the data really mixes shapes
    assert len({min(v) for v in want.values()}) >= 2  # and token counts
    _, seen = _run_recorded(dyn_ctx, task)
    # Every image was fed at its aspect-kept size, always with its own number of tokens.
    assert seen == want


def test_image_input_is_the_packs_preparation(dyn_ctx, rand_ctx, dyn_eval):
    data = _file_images(dyn_eval / "vqa.parquet")[:4]
    for m in (dyn_ctx.model, rand_ctx.model):
        for b in data:
            px, n = image_input(m, b)
            ref, n_ref = prepare_image(b, m.vision.cfg, m.vision.image_size)
            assert n == n_ref and torch.equal(px[0], torch.from_numpy(ref))
    # fixed: the square resize and the model's constant count, as before.
    fm = rand_ctx.model
    for b in data:
        px, n = image_input(fm, b)
        assert n == fm.tokens_per_image and torch.equal(px, pixels(b, fm.vision.image_size))
    # dynamic: aspect kept (48x32 -> 3x2 merged patches, 16x64 -> 1x4).
    px, n = image_input(dyn_ctx.model, data[0])
    assert px.shape == (1, 32, 48, 3) and n == 6
    px, n = image_input(dyn_ctx.model, data[3])
    assert px.shape == (1, 64, 16, 3) and n == 4


def _vqa_direct(ctx: EvalContext, batched: bool) -> tuple[list[float], dict]:
    """vqa computed by hand: each prompt built from prepare_image, scored alone or all
    examples of the file in one mixed-size batch."""
    m, tok = ctx.model, ctx.tokenizer
    rows = pq.read_table(ctx.data_dir / "vqa.parquet").to_pylist()
    flat_p, flat_c, flat_i = [], [], []
    for r in rows:
        px, n = prepare_image(r["image"], m.vision.cfg, m.vision.image_size)
        p = [BOS_ID] + [IMAGE_ID] * n + encode_text(tok, f"Question: {r['question']} Answer:")
        for o in r["options"]:
            flat_p.append(p)
            flat_c.append(encode_text(tok, " " + answer_text(r, o)))
            flat_i.append(torch.from_numpy(px)[None])
    if batched:
        scores = continuation_logprobs(m, flat_p, flat_c, flat_i, CPU)
    else:
        scores = [
            continuation_logprobs(m, [p], [c], [i], CPU)[0]
            for p, c, i in zip(flat_p, flat_c, flat_i, strict=True)
        ]
    picks, k = [], 0
    for r in rows:
        picks.append(max(range(len(r["options"])), key=lambda j: scores[k + j]))
        k += len(r["options"])
    res = accuracy_by_type(picks, [r["answer"] for r in rows], [r["qtype"] for r in rows])
    return scores, res


def test_mixed_size_batches_score_as_one_example_at_a_time(dyn_ctx):
    alone, res_alone = _vqa_direct(dyn_ctx, batched=False)
    batched, res_batched = _vqa_direct(dyn_ctx, batched=True)
    assert np.allclose(alone, batched, atol=1e-4)
    assert res_alone == res_batched == get_task("vqa")(dyn_ctx)
    # Every scoring task: batch 16 (mixed sizes in one ImageBatch) == batch 1.
    one = EvalContext(dyn_ctx.model, dyn_ctx.tokenizer, dyn_ctx.data_dir, CPU, batch_size=1)
    for task in ("vqa_mc_converted", "multi_image", "caption_loss", "vmcbench"):
        assert get_task(task)(dyn_ctx) == get_task(task)(one), task
    assert get_task("multi_image")(dyn_ctx)["skipped_too_long"] == 0


def test_greedy_generation_batches_mixed_sizes_like_single_runs(dyn_ctx):
    m, tok = dyn_ctx.model, dyn_ctx.tokenizer
    datas = _file_images(dyn_ctx.data_dir / "vqa_open.parquet")[:8]
    prompts, images = [], []
    for b in datas:
        px, n = prepare_image(b, m.vision.cfg, m.vision.image_size)
        prompts.append([BOS_ID] + [IMAGE_ID] * n)
        images.append(torch.from_numpy(px)[None])
    # Equal-length prompts whose images differ in shape run together (one ImageBatch).
    by_len: dict[int, set] = {}
    for p, im in zip(prompts, images, strict=True):
        by_len.setdefault(len(p), set()).add(tuple(im.shape))
    assert any(len(s) > 1 for s in by_len.values())
    assert isinstance(batch_images(m, images), ImageBatch)
    got = greedy_generate(m, tok, prompts, images, CPU, 5, batch_size=8)
    want = [
        tok.decode(manual_greedy(m, p, im, 5)).strip()
        for p, im in zip(prompts, images, strict=True)
    ]
    assert got == want
    one = EvalContext(m, tok, dyn_ctx.data_dir, CPU, batch_size=1)
    assert get_task("vqa_open")(dyn_ctx) == get_task("vqa_open")(one)


def test_caption_gen_batches_mixed_sizes_like_single_runs(dyn_ctx):
    need_caption_metrics()
    one = EvalContext(dyn_ctx.model, dyn_ctx.tokenizer, dyn_ctx.data_dir, CPU, batch_size=1)
    assert get_task("caption_gen")(dyn_ctx) == get_task("caption_gen")(one)


def test_an_example_may_hold_images_of_different_sizes(dyn_ctx):
    """multi_image documents: one example's images as an ImageBatch, joined with others."""
    m = dyn_ctx.model
    a = torch.from_numpy(prepare_image(_png(np.zeros((20, 70, 3), np.uint8)), m.vision.cfg)[0])
    b = torch.from_numpy(prepare_image(_png(np.zeros((64, 64, 3), np.uint8)), m.vision.cfg)[0])
    p, mg = m.vision.cfg.patch_size, m.vision.cfg.merge
    mixed = ImageBatch.from_pixels([a, b], p, mg)
    joined = batch_images(m, [b[None], None, mixed, a[None]])
    assert isinstance(joined, ImageBatch)
    assert [tuple(g) for g in joined.grids.tolist()] == [
        (b.shape[0] // p, b.shape[1] // p),
        (a.shape[0] // p, a.shape[1] // p),
        (b.shape[0] // p, b.shape[1] // p),
        (a.shape[0] // p, a.shape[1] // p),
    ]
    # Fixed-size stacks still concatenate to one tensor, as before.
    same = batch_images(m, [b[None], b[None].clone()])
    assert torch.is_tensor(same) and same.shape == (2, *b.shape)


def test_fixed_mode_scores_are_unchanged(rand_ctx):
    """Fixed resolution: the square resize and tokens_per_image, computed the old way."""
    m, tok = rand_ctx.model, rand_ctx.tokenizer
    rows = pq.read_table(rand_ctx.data_dir / "vqa.parquet").to_pylist()
    flat_p, flat_c, flat_i = [], [], []
    for r in rows:
        p = [BOS_ID] + [IMAGE_ID] * m.tokens_per_image
        p += encode_text(tok, f"Question: {r['question']} Answer:")
        for o in r["options"]:
            flat_p.append(p)
            flat_c.append(encode_text(tok, " " + answer_text(r, o)))
            flat_i.append(pixels(r["image"], m.vision.image_size))
    scores = continuation_logprobs(m, flat_p, flat_c, flat_i, CPU)
    picks = [int(np.argmax(scores[4 * q : 4 * q + 4])) for q in range(len(rows))]
    ref = accuracy_by_type(picks, [r["answer"] for r in rows], [r["qtype"] for r in rows])
    assert get_task("vqa")(rand_ctx) == ref
    # caption_loss: one document at a time, as before.
    from vloom.doc import read_documents

    nll, n = 0.0, 0
    for d in read_documents(rand_ctx.data_dir / "captions.parquet"):
        ims = [b for b in d.images if b is not None]
        if len(ims) != 1:
            continue
        cap = " ".join(t for t in d.texts if t is not None)
        prompt = [BOS_ID] + [IMAGE_ID] * m.tokens_per_image
        seq = (prompt + encode_text(tok, cap) + [EOS_ID])[: m.lm.max_seq_len + 1]
        a, b = sequence_loss(m, seq, len(prompt), pixels(ims[0], m.vision.image_size), CPU)
        nll, n = nll + a, n + b
    assert get_task("caption_loss")(rand_ctx) == {"loss": nll / n, "tokens": n}


def test_unusable_images_name_the_file_and_row(dyn_ctx, tmp_path):
    rows = pq.read_table(dyn_ctx.data_dir / "vqa.parquet").to_pylist()
    bad = dict(rows[0], image=_png(np.zeros((1, 300, 3), np.uint8)))  # 300:1
    pq.write_table(pa.Table.from_pylist([rows[1], bad]), tmp_path / "vqa.parquet")
    ctx = EvalContext(dyn_ctx.model, dyn_ctx.tokenizer, tmp_path, CPU)
    with pytest.raises(ValueError, match=r"vqa\.parquet: row 1 .*aspect ratio of 300x1"):
        get_task("vqa")(ctx)
    bad = dict(rows[0], image=b"not an image")
    pq.write_table(pa.Table.from_pylist([bad]), tmp_path / "vqa.parquet")
    with pytest.raises(ValueError, match=r"vqa\.parquet: row 0 \(.*\): "):
        get_task("vqa")(ctx)
