"""Maps vision features to LM embeddings: a 2-layer MLP (as LLaVA-1.5) plus a learned
embedding per image-token slot, so the LM can address "the top-left part of the image"
directly instead of recovering it from the encoder's features. With dynamic resolution
the number of tokens varies per image, so there are no slots (2D RoPE in the encoder
carries where each token is), and none with `model.vision.connector: llava`, which makes it
exactly LLaVA's LlavaMultiModalProjector (Linear -> exact GELU -> Linear, biases)."""

from __future__ import annotations

import torch
from torch import nn


class Connector(nn.Module):
    def __init__(self, d_vision: int, d_lm: int, n_tokens: int | None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_vision, d_lm)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(d_lm, d_lm)
        if n_tokens is not None:
            self.slot_embed = nn.Parameter(torch.zeros(1, n_tokens, d_lm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, P, Dv] -> [N, P, D_lm] (fixed), or [tokens, Dv] -> [tokens, D_lm] (no slots)."""
        y = self.fc2(self.act(self.fc1(x)))
        return y + self.slot_embed if hasattr(self, "slot_embed") else y
