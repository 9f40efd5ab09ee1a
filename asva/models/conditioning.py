"""Text and image conditioning of the embedded model (stand-ins for DynamiCrafter's CLIP encoders).

DynamiCrafter encodes the caption with OpenCLIP's text encoder and the first frame with OpenCLIP's
image encoder plus a Resampler; both become cross-attention tokens. Here the caption's words are
hashed into a small embedding table and the first frame goes through a few convolutions: same
interface (tokens of `context_dim`), no downloaded weights. A dropped condition (classifier-free
guidance) is all-zero tokens.
"""

from __future__ import annotations

import zlib

import torch
from torch import nn

TEXT_BUCKETS = 256
MAX_WORDS = 4


class HashedTextEncoder(nn.Module):
    def __init__(self, context_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(TEXT_BUCKETS, context_dim)
        self.position = nn.Parameter(torch.randn(MAX_WORDS, context_dim) * 0.02)

    @staticmethod
    def word_ids(caption: str) -> list[int]:
        words = caption.replace("_", " ").lower().split()[:MAX_WORDS]
        return [zlib.crc32(word.encode()) % TEXT_BUCKETS for word in words]

    def forward(self, captions: list[str]) -> torch.Tensor:
        """[B, MAX_WORDS, D]; padding positions are zero."""
        out = self.position.new_zeros(len(captions), MAX_WORDS, self.position.shape[1])
        for row, caption in enumerate(captions):
            ids = self.word_ids(caption)
            if ids:
                out[row, : len(ids)] = self.embedding(torch.tensor(ids, device=out.device)) + self.position[: len(ids)]
        return out


class ConvImageEncoder(nn.Module):
    """First frame [B, 3, H, W] in [-1, 1] -> 16 tokens [B, 16, D]."""

    def __init__(self, context_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(32, context_dim, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(4),
        )
        self.proj = nn.Linear(context_dim, context_dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.proj(self.net(image).flatten(2).transpose(1, 2))
