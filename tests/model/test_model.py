import pytest
import torch

from vloom.config import ModelConfig
from vloom.model import VLM, load_model, make_targets, save_model
from vloom.sequence import BOS_ID, IGNORE_INDEX, IMAGE_ID, PAD_ID

CFG = ModelConfig(
    d_model=32,
    n_layers=2,
    n_heads=4,
    n_kv_heads=2,
    vision={"d_model": 16, "n_layers": 1, "n_heads": 2, "patch_size": 4, "merge": 2},
)


def _model(seed=0):
    torch.manual_seed(seed)
    return VLM(CFG, vocab_size=50, max_seq_len=32, image_size=16).eval()


def _inputs():
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(4, 50, (2, 20), generator=g)
    tokens[0, 3:7] = IMAGE_ID  # 4 tokens per image: (16 / 4 / 2)^2
    tokens[1, 10:14] = IMAGE_ID
    images = torch.randint(0, 256, (2, 16, 16, 3), dtype=torch.uint8, generator=g)
    return tokens, images


def test_shapes_and_tokens_per_image():
    m = _model()
    assert m.tokens_per_image == 4
    tokens, images = _inputs()
    logits, loss = m(tokens, images, tokens)
    assert logits.shape == (2, 20, 50) and loss.ndim == 0 and torch.isfinite(loss)


def test_causal_future_tokens_do_not_change_the_past():
    m = _model()
    tokens, images = _inputs()
    a, _ = m(tokens, images)
    t2 = tokens.clone()
    t2[:, 15:] = 5
    b, _ = m(t2, images)
    assert torch.allclose(a[:, :15], b[:, :15], atol=1e-6)
    assert not torch.allclose(a[:, 15:], b[:, 15:])


def test_kv_cache_gives_the_full_forward_logits():
    # prompt with images (GQA model), then a 3-token chunk, then single tokens: every step's
    # logits equal the full-sequence forward at the same positions
    m = _model()
    tokens, images = _inputs()
    full, _ = m(tokens, images)
    cache = m.lm.new_cache()
    parts = [m(tokens[:, :14], images, cache=cache)[0]]
    parts.append(m(tokens[:, 14:17], cache=cache)[0])
    for t in range(17, 20):
        parts.append(m(tokens[:, t : t + 1], cache=cache)[0])
    assert cache.pos == 20
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)
    with pytest.raises(AssertionError, match="exceeds max_seq_len 32"):
        m(torch.randint(4, 50, (2, 13)), cache=cache)


def test_image_changes_logits_only_from_its_position_on():
    m = _model()
    tokens, images = _inputs()
    a, _ = m(tokens, images)
    im2 = images.clone()
    im2[1] = 255 - im2[1]  # the second image sits at positions 10..13 of row 1
    b, _ = m(tokens, im2)
    assert torch.allclose(a[0], b[0], atol=1e-6)
    assert torch.allclose(a[1, :10], b[1, :10], atol=1e-6)
    assert not torch.allclose(a[1, 10:], b[1, 10:])


def test_image_count_mismatch_is_an_error():
    m = _model()
    tokens, images = _inputs()
    with pytest.raises(AssertionError, match="image tokens but 1 images"):
        m(tokens, images[:1])


def test_set_trainable_freezes_parts():
    m = _model()
    m.set_trainable(["connector"])
    assert all(not p.requires_grad for p in m.vision.parameters())
    assert all(not p.requires_grad for p in m.lm.parameters())
    assert all(p.requires_grad for p in m.connector.parameters())
    with pytest.raises(ValueError, match="unknown model part 'eyes'"):
        m.set_trainable(["eyes"])


def test_targets_skip_pad_image_and_bos():
    rows = torch.tensor([[BOS_ID, 7, IMAGE_ID, IMAGE_ID, 8, PAD_ID]])
    inputs, targets = make_targets(rows)
    assert inputs.tolist() == [[BOS_ID, 7, IMAGE_ID, IMAGE_ID, 8]]
    assert targets.tolist() == [[7, IGNORE_INDEX, IGNORE_INDEX, 8, IGNORE_INDEX]]


def test_save_load_round_trip_is_exact(tmp_path):
    m = _model()
    save_model(m, tmp_path / "ck")
    m2 = load_model(tmp_path / "ck").eval()
    tokens, images = _inputs()
    assert torch.equal(m(tokens, images)[0], m2(tokens, images)[0])
    assert m2.lm.lm_head.weight is m2.lm.embed_tokens.weight  # tying survives


def test_bad_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a checkpoint"):
        load_model(tmp_path)
    save_model(_model(), tmp_path / "ck")
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(ValueError, match="corrupt safetensors"):
        load_model(tmp_path / "ck")
    save_model(_model(), tmp_path / "ck2")
    import json

    meta = json.loads((tmp_path / "ck2" / "config.json").read_text())
    meta["model"]["d_model"] = 64
    meta["model"]["n_heads"] = 4
    (tmp_path / "ck2" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="weights do not match config.json: size mismatch"):
        load_model(tmp_path / "ck2")
