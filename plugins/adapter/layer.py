"""The adapter module and the wrapper that puts it behind an existing linear layer."""

from __future__ import annotations

import torch
from torch import nn

ADAPTER_PREFIX = "bottleneck"
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "swish": nn.SiLU, "tanh": nn.Tanh}


class Bottleneck(nn.Module):
    """``x + up(act(down(x)))``; ``up`` starts at zero, so a new adapter is the identity."""

    def __init__(self, hidden: int, reduction_factor: int, non_linearity: str):
        super().__init__()
        size = max(1, hidden // reduction_factor)
        self.down = nn.Linear(hidden, size)
        self.act = ACTIVATIONS[non_linearity]()
        self.up = nn.Linear(size, hidden)
        nn.init.normal_(self.down.weight, std=1e-2)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


class AdaptedLinear(nn.Module):
    """A linear layer followed by a bottleneck adapter, in front of the layer's own dropout,
    residual and LayerNorm (Houlsby's placement)."""

    def __init__(self, base: nn.Linear, reduction_factor: int, non_linearity: str):
        super().__init__()
        self.base = base
        setattr(self, ADAPTER_PREFIX, Bottleneck(base.out_features, reduction_factor, non_linearity))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, ADAPTER_PREFIX)(self.base(x))
