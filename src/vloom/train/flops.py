"""Model FLOPs per token and per image, and device peak FLOP/s, for MFU.

Counting (PaLM appendix B; Chinchilla): a training step costs 6 FLOPs per parameter per
token (forward 2, backward 4) for every matrix the token passes through, the output
layer included (its vocab x d matrix counts even when tied to the embedding, which is a
lookup and costs nothing), plus attention scores and values: 12 x layers x d x seq_len
per token (non-causal count, as PaLM). The decoder's count is the scaling laws' one
(`vloom.scaling.flops.train_flops_per_token`, norm weights left out), read off the built
model's shape, so MFU and compute-optimal fits use one formula. An image adds the same for the vision encoder over
its patches and for the connector over its tokens. Frozen parts are counted as trained
(their backward through activations still runs), so MFU is slightly optimistic there.
"""

from __future__ import annotations

import torch

from vloom.model.lm import LanguageModel
from vloom.model.vlm import VLM
from vloom.scaling.flops import LMShape, train_flops_per_token

# Dense bf16 peak FLOP/s by device-name fragment (vendor datasheets, without sparsity).
PEAK_BF16 = {
    "H200": 989e12,
    "H100": 989e12,  # SXM; the PCIe card is 756e12: set train.peak_flops
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 70e12,
    "L4": 121e12,
    "RTX 4090": 165e12,
    "V100": 125e12,
}


def _params(mod: torch.nn.Module, skip: tuple[str, ...] = ()) -> int:
    seen, n = set(), 0
    for name, p in mod.named_parameters():
        if id(p) in seen or name.startswith(skip):
            continue
        seen.add(id(p))
        n += p.numel()
    return n


def lm_shape(lm: LanguageModel, seq_len: int) -> LMShape:
    """The counted shape of a built decoder (a grown model's widths included)."""
    c = lm.cfg
    return LMShape(
        d_model=c.d_model,
        n_layers=len(lm.layers),
        n_heads=c.n_heads,
        n_kv_heads=c.n_kv_heads or c.n_heads,
        ffn_hidden=lm.layers[0].mlp.gate_proj.out_features,
        vocab_size=lm.vocab_size,
        seq_len=seq_len,
        tie_embeddings=c.tie_embeddings,
    )


def decoder_flops_per_token(lm: LanguageModel, seq_len: int) -> float:
    """Training FLOPs per token of the decoder LM at context `seq_len`."""
    return train_flops_per_token(lm_shape(lm, seq_len))["total"]


def lm_flops_per_token(vlm: VLM, seq_len: int) -> float:
    return decoder_flops_per_token(vlm.lm, seq_len)


def flops_per_image(vlm: VLM) -> float:
    v = vlm.vision
    p = v.n_patches
    enc = 6.0 * _params(v, skip=("pos_embed",)) * p + 12.0 * v.cfg.n_layers * v.cfg.d_model * p * p
    return enc + 6.0 * _params(vlm.connector, skip=("slot_embed",)) * vlm.tokens_per_image


def peak_flops(device: torch.device, bf16: bool, override: float | None) -> float | None:
    """Peak FLOP/s of one device: the config's value, else the bf16 table for a known GPU."""
    if override:
        return override
    if device.type != "cuda" or not bf16:
        return None
    name = torch.cuda.get_device_name(device)
    for key, val in PEAK_BF16.items():
        if key in name:
            return val
    return None
