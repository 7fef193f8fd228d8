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
post_layernorm); see vloom.model.hf_export. `arch: clip` is transformers' CLIPVisionModel: a
class token and its position, pre-LayerNorm, CLIP blocks (quick_gelu); the class token is dropped
from the features (LLaVA's "default" strategy). For both, `feature_layer` picks the hidden state
as LLaVA's vision_feature_layer (blocks past it are not built, so no parameter goes unused) and
`post_norm` adds the tower's post_layernorm. `model.vision.init` loads a Hugging Face tower's
weights into them (vloom.model.hf_vision).

Pixels reach the encoder as uint8 RGB (pack stores them so); the encoder normalises them itself:
with `image_mean` / `image_std` (a loaded tower's preprocessing) x = (p / 255 - mean) / std,
otherwise p / 127.5 - 1 (mean = std = 0.5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vloom.config import VisionConfig
from vloom.imagebatch import ImageBatch, patchify
from vloom.model.layers import Block, RMSNorm, SiglipBlock

# Inputs are uint8 RGB; mapping to [-1, 1] keeps the encoder free of dataset statistics.
PIXEL_SCALE = 127.5
ROPE_THETA = 10000.0
SIGLIP_MLP_RATIO = 4
TOWERS = ("siglip", "clip")  # transformers-shaped archs
# LayerNorm eps and MLP activation of each tower family (transformers' defaults)
TOWER_EPS = {"siglip": 1e-6, "clip": 1e-5}
TOWER_ACT = {"siglip": "gelu_tanh", "clip": "quick_gelu"}


def tower_blocks(cfg: VisionConfig) -> int:
    """Blocks built for a siglip/clip encoder: up to the feature layer (LLaVA's -2 for CLIP)."""
    layer = (
        cfg.feature_layer if cfg.feature_layer is not None else (-2 if cfg.arch == "clip" else -1)
    )
    n = cfg.n_layers + 1 + layer
    if n < 1:
        raise ValueError(
            f"model.vision.feature_layer={layer} leaves no block of n_layers={cfg.n_layers}"
        )
    return n


class VisionEncoder(nn.Module):
    def __init__(self, cfg: VisionConfig, image_size: int) -> None:
        super().__init__()
        assert image_size % (cfg.patch_size * cfg.merge) == 0, (
            f"image_size {image_size} must be a multiple of patch_size x merge"
        )
        self.cfg, self.image_size = cfg, image_size
        self.n_patches = (image_size // cfg.patch_size) ** 2
        self.dynamic = cfg.resolution == "dynamic"
        self.clip = cfg.arch == "clip"
        # CLIP's patch conv has no bias; a class token leads the sequence
        self.patch_embed = nn.Conv2d(
            3, cfg.d_model, cfg.patch_size, stride=cfg.patch_size, bias=not self.clip
        )
        if self.clip:
            self.cls_embed = nn.Parameter(torch.randn(cfg.d_model) * 0.02)
            self.pre_norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps or TOWER_EPS["clip"])
        if not self.dynamic:
            n_pos = self.n_patches + int(self.clip)
            self.pos_embed = nn.Parameter(torch.randn(1, n_pos, cfg.d_model) * 0.02)
        else:
            hd = cfg.d_model // cfg.n_heads
            # hd/4 frequencies per axis: rows fill the first half of the rotary pairs, columns
            # the second (Qwen2-VL VisionRotaryEmbedding(hd / 2)).
            inv = 1.0 / ROPE_THETA ** (torch.arange(0, hd // 2, 2, dtype=torch.float32) / (hd // 2))
            self.register_buffer("rope_inv_freq", inv, persistent=False)
        if cfg.arch in TOWERS:
            hidden = cfg.mlp_hidden or SIGLIP_MLP_RATIO * cfg.d_model
            eps = cfg.norm_eps or TOWER_EPS[cfg.arch]
            act = cfg.act or TOWER_ACT[cfg.arch]
            self.layers = nn.ModuleList(
                SiglipBlock(cfg.d_model, cfg.n_heads, hidden, eps, act)
                for _ in range(tower_blocks(cfg))
            )
            # LLaVA's features skip the post_layernorm; nanoVLM / Idefics3 apply it
            self.norm = nn.LayerNorm(cfg.d_model, eps=eps) if cfg.post_norm else nn.Identity()
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
        with dynamic resolution or the llava / pixel_shuffle connectors)."""
        if self.dynamic or self.cfg.connector != "vloom":
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
        x = self.normalise(images).permute(0, 3, 1, 2)  # [N, 3, H, W]
        x = x.to(self.patch_embed.weight.dtype)
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # [N, P, Dv]
        if self.clip:
            x = torch.cat([self.cls_embed.expand(x.shape[0], 1, -1), x], dim=1)
        x = x + self.pos_embed
        if self.clip:
            x = self.pre_norm(x)
        for layer in self.layers:
            x = layer(x)
        if self.clip:
            x = x[:, 1:]  # the patches only
        return self.merge_patches(self.norm(x))

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (or [0, 255] float) pixels [..., 3] channels-last -> normalised float32."""
        x = pixels.float()
        if self.cfg.image_mean is None:
            return x / PIXEL_SCALE - 1.0
        mean = torch.tensor(self.cfg.image_mean, device=x.device)
        std = torch.tensor(self.cfg.image_std, device=x.device)
        return (x / 255.0 - mean) / std

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
        x = self.normalise(patches.unflatten(-1, (-1, 3))).flatten(-2).to(w.dtype)
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
