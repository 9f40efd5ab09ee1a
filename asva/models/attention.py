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

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`mask` broadcasts to [B, heads, Lq, Lk]; True = may attend.

        A query whose mask row is all False attends to nothing and gets a zero output (rather than
        the NaN of a softmax over an empty set).
        """
        context = x if context is None else context
        batch = x.shape[0]
        q, k, v = (
            proj(src).unflatten(-1, (self.heads, -1)).transpose(1, 2)
            for proj, src in ((self.to_q, x), (self.to_k, context), (self.to_v, context))
        )
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        if mask is not None:
            out = torch.nan_to_num(out) * mask.any(dim=-1, keepdim=True)
        return self.to_out(out.transpose(1, 2).reshape(batch, x.shape[1], -1))
