"""Maps vision patch features to LM embeddings (a 2-layer MLP, as LLaVA-1.5)."""

from __future__ import annotations

import torch
from torch import nn


class Connector(nn.Module):
    def __init__(self, d_vision: int, d_lm: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_vision, d_lm)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(d_lm, d_lm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))  # [N, P, D_lm]
