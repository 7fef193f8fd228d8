"""Document masking: sequences packed into one row behave as if each ran alone."""

import pytest
import torch

from vloom.config import ModelConfig
from vloom.model import VLM
from vloom.model.layers import document_mask
from vloom.sequence import IMAGE_ID, PAD_ID

CFG = ModelConfig(
    d_model=32,
    n_layers=2,
    n_heads=4,
    n_kv_heads=2,
    vision={"d_model": 16, "n_layers": 1, "n_heads": 2, "patch_size": 4, "merge": 2},
)


def _model():
    torch.manual_seed(0)
    return VLM(CFG, vocab_size=50, max_seq_len=32, image_size=16).eval()


def _packed():
    """Row 0: a 9-token sequence with an image, a 7-token one, 4 pads; row 1: one sequence
    of 16 tokens, then 4 pads."""
    g = torch.Generator().manual_seed(1)
    a = torch.randint(4, 50, (9,), generator=g)
    a[2:6] = IMAGE_ID  # 4 tokens per image: (16 / 4 / 2)^2
    b = torch.randint(4, 50, (7,), generator=g)
    c = torch.randint(4, 50, (16,), generator=g)
    pad = torch.full((4,), PAD_ID)
    tokens = torch.stack([torch.cat([a, b, pad]), torch.cat([c, pad])])
    segments = torch.tensor([[0] * 9 + [1] * 7 + [-1] * 4, [0] * 16 + [-1] * 4])
    image = torch.randint(0, 256, (1, 16, 16, 3), dtype=torch.uint8, generator=g)
    return (a, b, c), tokens, segments, image


def test_mask_and_positions():
    seg = torch.tensor([[0, 0, 1, 1, 1, -1]])
    mask, pos = document_mask(seg)
    assert pos.tolist() == [[0, 1, 0, 1, 2, 0]]
    m = mask[0, 0].int().tolist()
    assert m[1] == [1, 1, 0, 0, 0, 0]
    assert m[4] == [0, 0, 1, 1, 1, 0]
    assert m[5] == [0, 0, 0, 0, 0, 1]  # padding sees itself only


def test_packed_row_gives_each_sequence_its_own_logits():
    m = _model()
    (a, b, c), tokens, segments, image = _packed()
    with torch.no_grad():
        packed, _ = m(tokens, image, segments=segments)
        la, _ = m(a[None], image)
        lb, _ = m(b[None])
        lc, _ = m(c[None])
    assert torch.allclose(packed[0, :9], la[0], atol=1e-5)
    assert torch.allclose(packed[0, 9:16], lb[0], atol=1e-5)
    assert torch.allclose(packed[1, :16], lc[0], atol=1e-5)
    assert torch.isfinite(packed).all()  # padding rows too


def test_gradients_do_not_cross_documents():
    m = _model()
    _, tokens, segments, image = _packed()
    x = m.embed(tokens, image).detach().requires_grad_(True)
    logits = m.lm.forward_embeds(x, segments=segments)
    logits[0, 9:16].sum().backward()  # the second document's outputs
    g = x.grad.abs().sum(-1)
    assert g[0, :9].max() == 0  # the first document gets nothing
    assert g[0, 16:].max() == 0 and g[1].max() == 0
    assert g[0, 9:16].min() > 0


def test_one_segment_per_row_equals_the_plain_path():
    m = _model()
    _, tokens, _, image = _packed()
    with torch.no_grad():
        plain, _ = m(tokens[1:])
        masked, _ = m(tokens[1:], segments=torch.zeros_like(tokens[1:]))
    assert torch.allclose(plain, masked, atol=1e-5)


def test_segments_of_the_wrong_shape_and_with_a_cache_are_refused():
    m = _model()
    _, tokens, segments, image = _packed()
    with pytest.raises(ValueError, match="segments"):
        m(tokens, image, segments=segments[:, :-1])
    with pytest.raises(ValueError, match="KV cache"):
        m(tokens, image, segments=segments, cache=m.lm.new_cache())
