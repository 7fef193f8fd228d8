"""A small ViT: patchify, learned position embeddings, bidirectional pre-norm blocks."""

from __future__ import annotations

import torch
from torch import nn

from vloom.config import VisionConfig
from vloom.model.layers import Block, RMSNorm

# Inputs are uint8 RGB; mapping to [-1, 1] keeps the encoder free of dataset statistics.
PIXEL_SCALE = 127.5


class VisionEncoder(nn.Module):
    def __init__(self, cfg: VisionConfig, image_size: int) -> None:
        super().__init__()
        assert image_size % (cfg.patch_size * cfg.merge) == 0, (
            f"image_size {image_size} must be a multiple of patch_size x merge"
        )
        self.cfg, self.image_size = cfg, image_size
        self.n_patches = (image_size // cfg.patch_size) ** 2
        self.patch_embed = nn.Conv2d(3, cfg.d_model, cfg.patch_size, stride=cfg.patch_size)
        self.pos_embed = nn.Parameter(torch.randn(1, self.n_patches, cfg.d_model) * 0.02)
        self.layers = nn.ModuleList(
            Block(cfg.d_model, cfg.n_heads, None, 4.0, causal=False) for _ in range(cfg.n_layers)
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

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: [N, H, W, 3] uint8 (or float in [0, 255]) -> merged features [N, P', Dv*m^2]."""
        x = images.permute(0, 3, 1, 2).float() / PIXEL_SCALE - 1.0  # [N, 3, H, W]
        x = x.to(self.patch_embed.weight.dtype)
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # [N, P, Dv]
        x = x + self.pos_embed
        for layer in self.layers:
            x = layer(x)
        return self.merge_patches(self.norm(x))
