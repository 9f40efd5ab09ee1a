"""Tiny stand-ins for the frozen audio encoders, with per-layer taps and token timestamps.

The paper taps ImageBind's audio trunk (semantic, contrastively trained) and BEATs (masked-audio
modelling). On the embedded default neither checkpoint exists, so two small transformers of the
same shape play their roles, trained once on the pretraining pool's audio with the same kind of
objective and then frozen:

- `tiny_semantic` (encoder "a"): trained to classify the sound, as a stand-in for ImageBind audio;
- `tiny_masked` (encoder "b"): trained to reconstruct masked filterbank patches, as for BEATs.

Both cut the filterbank into time patches of `token_seconds`, so every token has a timestamp (the
centre of its patch) that the window mask uses.
"""

from __future__ import annotations

import torch
from torch import nn

from asva.data.audio import FRAME_SHIFT_MS, MEL_BINS, frame_times

FREQ_PATCH = 16  # mel bins per patch, as ImageBind's and BEATs' 16 x 16 patches


class TinyAudioEncoder(nn.Module):
    """fbank [B, F, 128] -> hidden states of every block [B, N, dim], and token times [N]."""

    def __init__(self, kind: str, num_layers: int, dim: int, token_seconds: float, num_classes: int):
        super().__init__()
        self.kind = kind
        self.frames_per_token = max(1, round(token_seconds * 1000 / FRAME_SHIFT_MS))
        patch = self.frames_per_token * MEL_BINS
        self.patch_embed = nn.Sequential(nn.Linear(patch, dim), nn.GELU(), nn.Linear(dim, dim))
        self.max_tokens = 512
        self.pos_embed = nn.Parameter(torch.randn(1, self.max_tokens, dim) * 0.02)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, nhead=4, dim_feedforward=2 * dim, dropout=0.0, batch_first=True, norm_first=True
            )
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.mask_token = nn.Parameter(torch.zeros(dim))
        # Pretext heads, used only while the stand-in is trained.
        self.class_head = nn.Linear(dim, num_classes)
        self.patch_head = nn.Linear(dim, patch)
        self.dim = dim

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    def patchify(self, fbank: torch.Tensor) -> torch.Tensor:
        batch, frames, mel = fbank.shape
        usable = frames - frames % self.frames_per_token
        return fbank[:, :usable].reshape(batch, usable // self.frames_per_token, self.frames_per_token * mel)

    def token_times(self, num_fbank_frames: int) -> torch.Tensor:
        """Centre time (s) of each token: the mean centre of the fbank frames it covers."""
        usable = num_fbank_frames - num_fbank_frames % self.frames_per_token
        return frame_times(usable).reshape(-1, self.frames_per_token).mean(dim=1)

    def forward(self, fbank: torch.Tensor, token_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Hidden states after each block (index i = block i, 0-based)."""
        tokens = self.patch_embed(self.patchify(fbank))
        if token_mask is not None:
            tokens = torch.where(token_mask[..., None], self.mask_token.expand_as(tokens), tokens)
        hidden = tokens + self.pos_embed[:, : tokens.shape[1]]
        states = []
        for block in self.blocks:
            hidden = block(hidden)
            states.append(hidden)
        return states

    def pretext_loss(self, fbank: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.kind == "tiny_semantic":
            final = self.norm(self(fbank)[-1])
            return nn.functional.cross_entropy(self.class_head(final.mean(dim=1)), labels)
        patches = self.patchify(fbank)
        mask = torch.rand(patches.shape[:2], generator=generator) < 0.4
        final = self.norm(self(fbank, token_mask=mask)[-1])
        return ((self.patch_head(final) - patches) ** 2)[mask].mean()
