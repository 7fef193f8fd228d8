"""The vision-language model: vision encoder -> connector -> decoder LM.

Image placeholder tokens (`<image>`, id `layout.image`, see vloom.sequence) in the input are
replaced, in order, by the connector outputs of the images passed alongside.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vloom.config import ModelConfig
from vloom.imagebatch import ImageBatch
from vloom.model.connector import Connector
from vloom.model.hf_lm import load_hf_lm
from vloom.model.hf_vision import load_tower
from vloom.model.layers import KVCache
from vloom.model.lm import LanguageModel
from vloom.model.vision import VisionEncoder
from vloom.sequence import DEFAULT_LAYOUT, IGNORE_INDEX, TokenLayout

PARTS = ("vision", "connector", "lm")


class VLM(nn.Module):
    def __init__(
        self,
        cfg: ModelConfig,
        vocab_size: int,
        max_seq_len: int,
        image_size: int,
        pretrained: bool = True,
        layout: TokenLayout = DEFAULT_LAYOUT,
    ) -> None:
        """pretrained: load `cfg.vision.init`'s tower and `cfg.lm.init`'s LM weights (False
        when a checkpoint's weights replace them anyway). layout: the special token ids of
        the tokenizer the model reads (packed data's `token_layout`)."""
        super().__init__()
        self.cfg, self.layout = cfg, layout
        self.vision = VisionEncoder(cfg.vision, image_size)
        slots = self.vision.slots
        self.connector = Connector(self.vision.d_out, cfg.d_model, slots, cfg.vision.connector)
        self.lm = LanguageModel(cfg, vocab_size, max_seq_len)
        # Dynamic resolution: the count for an image_size square (blank rows, FLOP estimates).
        self.tokens_per_image = self.vision.n_tokens
        self.apply(self._init)
        if slots is not None:
            nn.init.normal_(self.connector.slot_embed, std=0.02)
        # GPT-2 style: shrink residual output projections by depth for a stable start.
        for name, p in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                n = cfg.n_layers if name.startswith("lm.") else cfg.vision.n_layers
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * n))
        if pretrained and cfg.vision.init is not None:  # a pretrained tower replaces the init
            load_tower(self.vision, cfg.vision.init)
        if pretrained and cfg.lm.init is not None:  # a pretrained LM, its vocabulary grown
            load_hf_lm(self.lm, cfg.lm.init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear | nn.Conv2d):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def part(self, name: str) -> nn.Module:
        if name not in PARTS:
            raise ValueError(f"unknown model part {name!r}; parts are {', '.join(PARTS)}")
        return getattr(self, name)

    def set_trainable(self, parts: list[str] | tuple[str, ...]) -> None:
        for name in parts:
            self.part(name)  # validates the name
        for name in PARTS:
            self.part(name).requires_grad_(name in parts)

    def embed(self, tokens: torch.Tensor, images: torch.Tensor | ImageBatch | None) -> torch.Tensor:
        """tokens [B, T], images [N, H, W, 3] (or, dynamic, an ImageBatch) for the N image
        blocks in row-major order -> [B, T, D]."""
        x = self.lm.embed_tokens(tokens)  # [B, T, D]
        is_img = tokens == self.layout.image
        n_slots = int(is_img.sum())
        if n_slots == 0:
            return x
        assert images is not None and len(images) > 0, "image tokens present but no images given"
        feats = self.connector(self.vision(images))  # [N, P, D] or [sum of tokens, D]
        feats = feats.reshape(-1, feats.shape[-1])
        assert feats.shape[0] == n_slots, (
            f"{n_slots} image tokens but {len(images)} images make {feats.shape[0]} tokens"
        )
        x = x.clone()
        x[is_img] = feats.to(x.dtype)
        return x

    def forward(
        self,
        tokens: torch.Tensor,
        images: torch.Tensor | ImageBatch | None = None,
        targets: torch.Tensor | None = None,
        cache: KVCache | None = None,
        segments: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """cache (from `self.lm.new_cache()`): decode incrementally; `tokens` are then the
        positions after the cached ones, and images belong to those tokens only. segments
        [B, T]: each position's document index in its row, -1 for padding (document
        masking: attention within a document, positions from its start)."""
        logits = self.lm.forward_embeds(self.embed(tokens, images), cache, segments)  # [B, T, V]
        loss = None
        if targets is not None:
            loss = F.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]),
                targets.reshape(-1),
                ignore_index=IGNORE_INDEX,
            )
        return logits, loss

    def num_params(self, part: str | None = None) -> int:
        mod = self if part is None else self.part(part)
        seen, n = set(), 0
        for p in mod.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                n += p.numel()
        return n


def make_targets(
    rows: torch.Tensor, layout: TokenLayout = DEFAULT_LAYOUT
) -> tuple[torch.Tensor, torch.Tensor]:
    """rows [B, T+1] -> inputs [B, T], targets [B, T] with pad/image/bos targets ignored."""
    inputs, targets = rows[:, :-1], rows[:, 1:].clone()
    skip = (targets == layout.pad) | (targets == layout.image)
    if layout.bos is not None:  # a document's first token follows nothing it could be told from
        skip |= targets == layout.bos
    targets[skip] = IGNORE_INDEX
    return inputs.contiguous(), targets
