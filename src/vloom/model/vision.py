"""A small ViT: patchify, positions, bidirectional pre-norm blocks, m x m patch merging.

Two modes (`VisionConfig.resolution`):
- fixed (default): square `image_size` images, learned absolute position embeddings.
- dynamic (Qwen2-VL): images of any size (sides multiples of patch x merge) as an
  `ImageBatch`; 2D rotary positions (half of each head's rotary pairs turn with the patch
  row, half with the column) and no absolute positions. All patches of a batch run as one
  sequence (one row, no padding) through every linear layer; attention is block-diagonal,
  one block per image (Qwen2-VL's cu_seqlens), computed per group of equal-size images
  (`segment_attention`) so it costs sum(patches^2) rather than a T x T mask.

`VisionConfig.arch: siglip` swaps the blocks for transformers' SiglipEncoderLayer (LayerNorm
with biases, GELU-tanh MLP of 4 x width) and drops the final norm, so with merge 1 the encoder
computes exactly what LLaVA takes from a SiglipVisionModel (hidden_states[-1], which is before
post_layernorm); see vloom.model.hf_export.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vloom.config import VisionConfig
from vloom.model.layers import Block, RMSNorm, SiglipBlock
from vloom.pack.images import ImageBatch, patchify

# Inputs are uint8 RGB; mapping to [-1, 1] keeps the encoder free of dataset statistics.
PIXEL_SCALE = 127.5
ROPE_THETA = 10000.0
SIGLIP_MLP_RATIO = 4


class VisionEncoder(nn.Module):
    def __init__(self, cfg: VisionConfig, image_size: int) -> None:
        super().__init__()
        assert image_size % (cfg.patch_size * cfg.merge) == 0, (
            f"image_size {image_size} must be a multiple of patch_size x merge"
        )
        self.cfg, self.image_size = cfg, image_size
        self.n_patches = (image_size // cfg.patch_size) ** 2
        self.dynamic = cfg.resolution == "dynamic"
        self.patch_embed = nn.Conv2d(3, cfg.d_model, cfg.patch_size, stride=cfg.patch_size)
        if not self.dynamic:
            self.pos_embed = nn.Parameter(torch.randn(1, self.n_patches, cfg.d_model) * 0.02)
        else:
            hd = cfg.d_model // cfg.n_heads
            # hd/4 frequencies per axis: rows fill the first half of the rotary pairs, columns
            # the second (Qwen2-VL VisionRotaryEmbedding(hd / 2)).
            inv = 1.0 / ROPE_THETA ** (torch.arange(0, hd // 2, 2, dtype=torch.float32) / (hd // 2))
            self.register_buffer("rope_inv_freq", inv, persistent=False)
        if cfg.arch == "siglip":
            hidden = SIGLIP_MLP_RATIO * cfg.d_model
            self.layers = nn.ModuleList(
                SiglipBlock(cfg.d_model, cfg.n_heads, hidden) for _ in range(cfg.n_layers)
            )
            self.norm = nn.Identity()  # LLaVA's features skip SigLIP's post_layernorm
        else:
            self.layers = nn.ModuleList(
                Block(cfg.d_model, cfg.n_heads, None, 4.0, causal=False)
                for _ in range(cfg.n_layers)
            )
            self.norm = RMSNorm(cfg.d_model)

    @property
    def grid(self) -> int:
        return self.image_size // self.cfg.patch_size

    @property
    def n_tokens(self) -> int:
        """LM tokens per image after merging merge x merge patches."""
        return (self.grid // self.cfg.merge) ** 2

    @property
    def slots(self) -> int | None:
        """Image-token slots the connector learns an embedding for (None: no slot embeddings,
        with dynamic resolution or the llava connector)."""
        if self.dynamic or self.cfg.connector == "llava":
            return None
        return self.n_tokens

    @property
    def d_out(self) -> int:
        return self.cfg.d_model * self.cfg.merge**2

    def merge_patches(self, x: torch.Tensor) -> torch.Tensor:
        """[N, P, Dv] -> [N, P / m^2, Dv * m^2]: concatenate each m x m block of patches."""
        m = self.cfg.merge
        if m == 1:
            return x
        n, _, d = x.shape
        g = self.grid
        x = x.view(n, g // m, m, g // m, m, d).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(n, (g // m) ** 2, m * m * d)

    def forward(self, images: torch.Tensor | ImageBatch) -> torch.Tensor:
        """fixed: images [N, H, W, 3] uint8 (or float in [0, 255]) -> merged features
        [N, P', Dv*m^2]. dynamic: an ImageBatch (or a same-size [N, H, W, 3] stack) ->
        merged features of all images in order, [sum of tokens, Dv*m^2]."""
        if self.dynamic:
            if not isinstance(images, ImageBatch):
                p, m = self.cfg.patch_size, self.cfg.merge
                images = ImageBatch(
                    torch.cat([patchify(im, p, m) for im in images]),
                    torch.tensor([[images.shape[1] // p, images.shape[2] // p]] * len(images)),
                )
            return self.forward_dynamic(images)
        if isinstance(images, ImageBatch):
            raise ValueError(
                "variable-size images (an ImageBatch) need model.vision.resolution: dynamic"
            )
        x = images.permute(0, 3, 1, 2).float() / PIXEL_SCALE - 1.0  # [N, 3, H, W]
        x = x.to(self.patch_embed.weight.dtype)
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # [N, P, Dv]
        x = x + self.pos_embed
        for layer in self.layers:
            x = layer(x)
        return self.merge_patches(self.norm(x))

    def n_tokens_of(self, grids: torch.Tensor) -> list[int]:
        """LM tokens per image of an ImageBatch's patch grids."""
        m2 = self.cfg.merge**2
        return [int(h) * int(w) // m2 for h, w in grids.tolist()]

    def rope_2d(self, grids: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin [sum(gh*gw), hd/2] for the patches of `grids` in merge-window order."""
        m = self.cfg.merge
        pos = []
        for gh, gw in grids.tolist():
            hp = torch.arange(gh, device=device)[:, None].expand(gh, gw)
            wp = torch.arange(gw, device=device)[None, :].expand(gh, gw)
            hw = torch.stack([hp, wp], -1).reshape(gh // m, m, gw // m, m, 2)
            pos.append(hw.permute(0, 2, 1, 3, 4).reshape(-1, 2))
        p = torch.cat(pos).float()  # [P, 2] (row, col)
        freqs = torch.cat(
            [p[:, :1] * self.rope_inv_freq, p[:, 1:] * self.rope_inv_freq], dim=-1
        )  # [P, hd/2]
        return freqs.cos(), freqs.sin()

    def embed_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """[P, p*p*3] uint8 -> [P, Dv]: the patch conv as one matmul (same weights)."""
        w = self.patch_embed.weight  # [Dv, 3, p, p]
        w = w.permute(0, 2, 3, 1).reshape(w.shape[0], -1)  # [Dv, p*p*3] in patch layout
        x = (patches.float() / PIXEL_SCALE - 1.0).to(w.dtype)
        return F.linear(x, w, self.patch_embed.bias)

    def forward_dynamic(self, batch: ImageBatch) -> torch.Tensor:
        """ImageBatch -> merged features [sum of tokens, Dv*m^2], images in order."""
        counts = batch.patch_counts
        assert sum(counts) == batch.patches.shape[0], (
            f"grids name {sum(counts)} patches but {batch.patches.shape[0]} were given"
        )
        x = self.embed_patches(batch.patches)[None]  # [1, P, Dv]: the whole batch, one row
        rope = self.rope_2d(batch.grids, x.device)
        for layer in self.layers:
            x = layer(x, rope, counts)  # attention stays inside each image
        x = self.norm(x)[0]  # [P, Dv]
        m2 = self.cfg.merge**2
        return x.reshape(x.shape[0] // m2, m2 * x.shape[-1])  # merge-window order: a reshape
