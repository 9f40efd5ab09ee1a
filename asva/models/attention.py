"""Multi-head attention shared by every attention layer of the tiny denoiser and the adapters."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Attention(nn.Module):
    """Queries from `x` [B, Lq, dim]; keys and values from `context` [B, Lk, context_dim] (or x)."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        context_dim = context_dim or dim
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(context_dim, dim, bias=False)
        self.to_v = nn.Linear(context_dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        return self.attend(x, self.to_k(context), self.to_v(context))

    def attend(
        self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Queries from `x` over keys and values already projected by `to_k` and `to_v` ([B, Lk, dim]),
        for a caller that projects a context once and hands each query row its own part of it.

        `mask` broadcasts to [B, heads, Lq, Lk], True = may attend; it must leave every query at least
        one key (a softmax over nothing is not defined).
        """
        batch = x.shape[0]
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (self.to_q(x), keys, values))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.to_out(out.transpose(1, 2).reshape(batch, x.shape[1], -1))
