"""Dynamic resolution in the model: 2D RoPE, block-diagonal batching of mixed-size images,
variable image tokens, and a tiny synth -> pack -> train -> eval run with it."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from tinyexp import tiny_config

import vloom.model.vision as vision_mod
from vloom.config import ModelConfig
from vloom.doc import Document, list_shards, read_documents, write_shard
from vloom.imagebatch import ImageBatch
from vloom.model.io import load_model
from vloom.model.layers import segment_attention
from vloom.model.vlm import VLM
from vloom.pack import PackedStream, run_pack
from vloom.pack.images import max_image_tokens
from vloom.sequence import BOS_ID, IMAGE_ID

P, M = 8, 2


def _cfg(resolution: str = "dynamic") -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "d_model": 32,
            "n_layers": 1,
            "n_heads": 2,
            "vision": {
                "d_model": 32,
                "n_layers": 2,
                "n_heads": 2,
                "patch_size": P,
                "merge": M,
                "resolution": resolution,
            },
        }
    )


def _model(resolution: str = "dynamic") -> VLM:
    torch.manual_seed(0)
    return VLM(_cfg(resolution), 300, 128, 32).eval()


def _images(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8) for h, w in sizes]


SIZES = [(32, 48), (16, 64), (48, 32), (32, 32), (64, 16)]


def _alone(m: VLM, ims) -> list[torch.Tensor]:
    return [m.vision(ImageBatch.from_pixels([im], P, M)) for im in ims]


def test_segment_attention_is_a_block_diagonal_mask():
    g = torch.Generator().manual_seed(0)
    lengths = [6, 4, 6, 1, 4, 9]  # equal lengths are batched together; order is kept
    q, k, v = (torch.randn(1, 2, sum(lengths), 8, generator=g) for _ in range(3))
    owner = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    mask = owner[:, None] == owner[None, :]  # [T, T] True inside one segment
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(segment_attention(q, k, v, lengths), ref, atol=1e-5)
    full = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert not torch.allclose(full, ref, atol=1e-3)  # the mask matters for this input


def test_encoder_output_is_the_same_alone_or_in_a_mixed_size_batch():
    m = _model()
    ims = _images(SIZES)
    with torch.no_grad():
        alone = _alone(m, ims)
        batch = m.vision(ImageBatch.from_pixels(ims, P, M))
    n_tok = [(h // P // M) * (w // P // M) for h, w in SIZES]
    assert [a.shape[0] for a in alone] == n_tok and batch.shape == (sum(n_tok), 32 * M * M)
    assert torch.allclose(torch.cat(alone), batch, atol=1e-5)
    # Block mask: changing one image leaves every other image's features alone.
    ims2 = list(ims)
    ims2[1] = 255 - ims[1]
    with torch.no_grad():
        batch2 = m.vision(ImageBatch.from_pixels(ims2, P, M))
    off = np.cumsum([0, *n_tok])
    for i in range(len(SIZES)):
        same = torch.allclose(batch[off[i] : off[i + 1]], batch2[off[i] : off[i + 1]], atol=1e-6)
        assert same == (i != 1)


def test_rotary_positions_turn_half_by_row_half_by_column():
    m = _model()
    cos, sin = m.vision.rope_2d(torch.tensor([[4, 6]]), "cpu")
    inv = m.vision.rope_inv_freq
    q = inv.shape[0]
    assert cos.shape == (24, 2 * q)  # [patches, head_dim / 2]
    # Patch 5 in merge-window order: window (0, 1), inside it (0, 1) -> row 0, column 3.
    # Patch 14: window (1, 0) -> rows 2-3, columns 0-1; inside (1, 0) -> row 3, column 0.
    for i, (row, col) in ((5, (0, 3)), (14, (3, 0)), (23, (3, 5))):
        ang = torch.cat([row * inv, col * inv])
        assert torch.allclose(cos[i], ang.cos()) and torch.allclose(sin[i], ang.sin())
    # A transposed image is not the same input: the encoder tells rows from columns.
    im = _images([(32, 32)])[0]
    with torch.no_grad():
        a = m.vision(ImageBatch.from_pixels([im], P, M))
        b = m.vision(ImageBatch.from_pixels([im.transpose(0, 1).contiguous()], P, M))
    assert not torch.allclose(a.sort(0).values, b.sort(0).values, atol=1e-4)


def test_patch_embedding_is_the_conv_on_the_image():
    m = _model()
    im = _images([(32, 48)])[0]
    b = ImageBatch.from_pixels([im], P, M)
    with torch.no_grad():
        got = m.vision.embed_patches(b.patches)  # [24, D] merge-window order
        x = im.permute(2, 0, 1)[None].float() / vision_mod.PIXEL_SCALE - 1.0
        ref = m.vision.patch_embed(x)[0]  # [D, 4, 6]
    for i, (r, c) in ((0, (0, 0)), (3, (1, 1)), (4, (0, 2)), (23, (3, 5))):
        assert torch.allclose(got[i], ref[:, r, c], atol=1e-5)
    # A same-size dense stack is patchified inside the model: same features.
    with torch.no_grad():
        assert torch.allclose(m.vision(im[None]), m.vision(b), atol=1e-6)


def test_lm_sees_one_token_per_merged_window_and_mismatch_is_an_error():
    m = _model()
    ims = _images(SIZES[:3])
    n_tok = [(h // P // M) * (w // P // M) for h, w in SIZES[:3]]
    row = [BOS_ID] + [IMAGE_ID] * n_tok[0] + [10, 11] + [IMAGE_ID] * n_tok[1] + [12]
    row2 = [BOS_ID, 13] + [IMAGE_ID] * n_tok[2]
    T = max(len(row), len(row2))
    tokens = torch.tensor([row + [0] * (T - len(row)), row2 + [0] * (T - len(row2))])
    b = ImageBatch.from_pixels(ims, P, M)
    logits, _ = m(tokens, b)
    assert logits.shape == (2, T, 300)
    with pytest.raises(AssertionError, match="image tokens but 2 images"):
        m(tokens, ImageBatch.from_pixels(ims[:2], P, M))


def test_fixed_mode_keeps_its_parameters_and_rejects_variable_sizes():
    fixed, dyn = _model("fixed"), _model("dynamic")
    fn = {n for n, _ in fixed.named_parameters()}
    dn = {n for n, _ in dyn.named_parameters()}
    assert fn - dn == {"vision.pos_embed", "connector.slot_embed"} and dn <= fn
    assert fixed.vision.pos_embed.shape == (1, 16, 32) and fixed.tokens_per_image == 4
    with pytest.raises(ValueError, match="resolution: dynamic"):
        fixed.vision(ImageBatch.from_pixels(_images([(32, 48)]), P, M))


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _mixed_size_world(src, dst) -> None:
    """The synthetic training documents with each image resized to a random size and
    aspect (the synth renders squares), so the pack sees a mix of sizes."""
    rng = np.random.default_rng(0)
    for shard in list_shards(src):
        docs = []
        for d in read_documents(shard):
            ims = []
            for im in d.images:
                if im is None:
                    ims.append(None)
                    continue
                try:
                    pil = Image.open(io.BytesIO(im)).convert("RGB")
                except Exception:
                    ims.append(im)  # the synth's broken images stay broken
                    continue
                w, h = int(rng.integers(16, 96)), int(rng.integers(16, 96))
                ims.append(_png(np.array(pil.resize((w, h)))))
            docs.append(Document(d.id, d.texts, ims, d.source, d.url, d.language, dict(d.metadata)))
        write_shard(dst / shard.name, docs)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_dynamic_resolution_end_to_end(tmp_path):
    from vloom.evaluate import evaluate
    from vloom.synth import generate
    from vloom.train import train

    cfg = tiny_config(
        model__vision__resolution="dynamic",
        model__vision__min_pixels=16 * 16,
        model__vision__max_pixels=48 * 48,
        synth__n_interleaved=16,
        synth__n_pairs=40,
        synth__n_text=10,
        train__steps=14,
        train__warmup_steps=2,
        train__log_every=1,
        train__checkpoint_every=100,
        train__image_start_fraction=0.0,
        train__image_text_ratio=1.0,
        eval__max_examples=8,
    )
    generate(cfg.synth, tmp_path / "synth", cfg.seed)
    _mixed_size_world(tmp_path / "synth" / "train", tmp_path / "mixed")
    stats = run_pack(tmp_path / "mixed", tmp_path / "packed", cfg, quiet=True)
    assert stats["resolution"] == "dynamic"
    it = stats["image_tokens"]
    assert 1 <= it["min"] < it["max"] <= 9  # 48x48 budget, 16-pixel merged patches

    # The LM rows mix image sizes; their only padding is the packer's, within its bound.
    s = PackedStream(tmp_path / "packed", "image", 0)
    grids = [tuple(g) for r in range(len(s)) for g in s.row(r)[1].grids.tolist()]
    assert len(set(grids)) >= 5
    k_max = max_image_tokens(cfg.model.vision, cfg.pack.image_size)
    n_rows = sum(stats["sequences"].values())
    bound = k_max / (cfg.pack.seq_len + 1) + 2 / n_rows
    assert stats["pad_fraction"] <= bound

    out = tmp_path / "run"
    train(cfg, tmp_path / "packed", out, quiet=True)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) >= 10 and sum(r["image_frac"] for r in rows if "loss" in r) > 0
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.3  # it learns

    ckpt = out / "checkpoints" / "final"
    m = load_model(ckpt)
    assert m.vision.dynamic and not hasattr(m.vision, "pos_embed")
    res = evaluate(ckpt, tmp_path / "synth" / "eval", ["vqa"], max_examples=8)
    assert res["vqa"]["n"] == 8 and 0 <= res["vqa"]["accuracy"] <= 1

    # One batch of rows whose images differ in size trains (no padding in the encoder).
    from vloom.train.batches import to_micro

    rows_with_images = [s.row(r) for r in range(len(s)) if len(s.row(r)[1])][:8]
    micro = to_micro(rows_with_images, pin=False)
    assert isinstance(micro.images, ImageBatch)
    assert len({tuple(g) for g in micro.images.grids.tolist()}) >= 3
    m.train()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    batch_losses = []
    for _ in range(6):
        _, loss = m(micro.inputs, micro.images, micro.targets)
        loss.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.vision.parameters())
        opt.step()
        opt.zero_grad()
        batch_losses.append(float(loss))
    assert batch_losses[-1] < batch_losses[0] - 0.1

    # A fixed-resolution config cannot silently read dynamic shards.
    with pytest.raises(ValueError, match="re-pack"):
        train(tiny_config(), tmp_path / "packed", tmp_path / "bad", quiet=True)
