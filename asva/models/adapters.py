"""The only trainable parts: multi-feature projections and windowed audio cross-attention.

- One Linear per tapped encoder layer maps that layer's tokens into the denoiser's context width;
  the projected tokens of all taps are concatenated (each keeps its timestamp).
- One audio cross-attention per temporal attention of the denoiser, inserted right before it: the
  frame's spatial tokens are the queries, the audio tokens inside the frame's window the keys.

The cross-attention's output projection starts at zero, so at step 0 the model is exactly the
frozen base model (the audio path adds nothing until it has learnt something).
"""

from __future__ import annotations

import torch
from torch import nn

from asva.models.attention import Attention
from asva.models.tiny_unet import AudioContext, TinyVideoUNet, time_encoding

ADAPTER_PREFIXES = ("audio_projections.", "audio_cross_attn.")


class AudioProjections(nn.Module):
    """One Linear(encoder dim -> context dim) per tap, keyed `<encoder>_<layer>`."""

    def __init__(self, taps: list[tuple[str, int]], encoder_dims: dict[str, int], context_dim: int):
        super().__init__()
        self.taps = taps
        self.context_dim = context_dim
        self.linears = nn.ModuleDict({f"{name}_{layer}": nn.Linear(encoder_dims[name], context_dim) for name, layer in taps})

    def forward(self, states: dict[tuple[str, int], torch.Tensor]) -> torch.Tensor:
        return torch.cat([self.linears[f"{name}_{layer}"](states[(name, layer)]) for name, layer in self.taps], dim=1)


class AudioCrossAttention(nn.Module):
    def __init__(self, channels: int, heads: int, context_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.attn = Attention(channels, heads, context_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.norm.reset_parameters()
        for linear in (self.attn.to_q, self.attn.to_k, self.attn.to_v):
            linear.reset_parameters()
        nn.init.zeros_(self.attn.to_out.weight)
        nn.init.zeros_(self.attn.to_out.bias)

    def forward(self, tokens: torch.Tensor, audio: AudioContext, frames: int) -> torch.Tensor:
        """tokens [B*T, HW, C]; every frame sees only the audio tokens of its window.

        The queries carry the frame's time and the keys their token's time (fixed sinusoids), so
        that inside its window a frame can tell a sound just before it from one just after it.
        """
        audio_tokens = audio.tokens.repeat_interleave(frames, dim=0)  # [B*T, N, D]
        batch = tokens.shape[0] // frames
        mask = audio.frame_mask.repeat(batch, 1)[:, None, None, :]  # [B*T, 1, 1, N]
        when = time_encoding(audio.frame_times, tokens.shape[-1]).repeat(batch, 1)[:, None, :]
        return self.attn(self.norm(tokens) + when, audio_tokens, mask=mask)


def attach_audio_adapters(unet: TinyVideoUNet, heads: int, context_dim: int) -> nn.ModuleList:
    """Insert an audio cross-attention before every temporal attention; return them all."""
    modules = nn.ModuleList()
    for transformer in unet.transformers():
        channels = transformer.norm_self.normalized_shape[0]
        transformer.audio_cross_attn = AudioCrossAttention(channels, heads, context_dim)
        modules.append(transformer.audio_cross_attn)
    return modules


def attach_dynamicrafter_audio_adapters(unet, context_dim: int, head_channels: int = 64) -> nn.ModuleList:
    """One audio cross-attention (query width = the level's channels, heads of `head_channels`)
    before each of the DynamiCrafter UNet's temporal transformers; return them all."""
    modules = nn.ModuleList()
    for temporal in unet.temporal_transformers():
        channels = temporal.norm.num_channels
        temporal.audio_cross_attn = AudioCrossAttention(channels, max(1, channels // head_channels), context_dim)
        modules.append(temporal.audio_cross_attn)
    return modules
