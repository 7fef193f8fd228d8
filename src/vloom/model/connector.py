"""Maps vision features to LM embeddings.

- `vloom` (default): a 2-layer MLP (as LLaVA-1.5) plus a learned embedding per image-token slot,
  so the LM can address "the top-left part of the image" directly instead of recovering it from
  the encoder's features. With dynamic resolution the number of tokens varies per image, so
  there are no slots (2D RoPE in the encoder carries where each token is).
- `llava`: the MLP only, exactly LLaVA's LlavaMultiModalProjector (Linear -> exact GELU ->
  Linear, biases).
- `pixel_shuffle`: one Linear without bias, nanoVLM's ModalityProjector. The shuffle itself
  ((B, N, D) -> (B, N / s^2, D * s^2), s = `model.vision.merge`) is the encoder's patch merge,
  which already orders the s x s blocks as nanoVLM's pixel_shuffle does, so pack, the image-token
  count and dynamic resolution need nothing new.
"""

from __future__ import annotations

import torch
from torch import nn


class Connector(nn.Module):
    def __init__(self, d_vision: int, d_lm: int, n_tokens: int | None, kind: str = "vloom") -> None:
        super().__init__()
        self.kind = kind
        if kind == "pixel_shuffle":
            self.proj = nn.Linear(d_vision, d_lm, bias=False)
            return
        self.fc1 = nn.Linear(d_vision, d_lm)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(d_lm, d_lm)
        if n_tokens is not None:
            self.slot_embed = nn.Parameter(torch.zeros(1, n_tokens, d_lm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, P, Dv] -> [N, P, D_lm] (fixed), or [tokens, Dv] -> [tokens, D_lm] (no slots)."""
        if self.kind == "pixel_shuffle":
            return self.proj(x)
        y = self.fc2(self.act(self.fc1(x)))
        return y + self.slot_embed if hasattr(self, "slot_embed") else y
