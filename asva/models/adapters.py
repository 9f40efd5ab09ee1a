"""The only trainable parts: multi-feature projections and windowed audio cross-attention.

- One Linear per tapped encoder layer maps that layer's tokens into the denoiser's context width;
  the projected tokens of all taps are concatenated (each keeps its timestamp).
- One audio cross-attention per temporal attention of the denoiser, inserted right before it: the
  frame's spatial tokens are the queries, the audio tokens inside the frame's window the keys. The
  audio tokens are projected to keys and values once per clip; each frame then attends to its own
  window's keys only, so the cost grows with the window, not with the clip's token count.

The cross-attention's output projection starts at zero, so at step 0 the model is exactly the
frozen base model (the audio path adds nothing until it has learnt something).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from asva.models.attention import Attention
from asva.models.tiny_unet import AudioContext, TinyVideoUNet, time_encoding

ADAPTER_PREFIXES = ("audio_projections.", "audio_cross_attn.")


class AudioProjections(nn.Module):
    """One Linear(encoder dim -> context dim) per tap, keyed `<encoder>_<layer>`."""

    def __init__(self, taps: list[tuple[str, int]], encoder_dims: dict[str, int], context_dim: int):
        super().__init__()
        self.taps = taps
        self.context_dim = context_dim
        self.linears = nn.ModuleDict(
            {f"{name}_{layer}": nn.Linear(encoder_dims[name], context_dim) for name, layer in taps}
        )

    def forward(self, states: dict[tuple[str, int], torch.Tensor]) -> torch.Tensor:
        return torch.cat([self.linears[f"{name}_{layer}"](states[(name, layer)]) for name, layer in self.taps], dim=1)


class AudioCrossAttention(nn.Module):
    """With `frame_time_encoding` (model.frame_time_encoding; in neither paper) the queries carry the
    frame's time as fixed sinusoids, so that with the keys' token times (model.audio_time_encoding) a
    frame can tell a sound just before it from one just after it inside its window."""

    def __init__(self, channels: int, heads: int, context_dim: int, frame_time_encoding: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.attn = Attention(channels, heads, context_dim)
        self.frame_time_encoding = frame_time_encoding
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.norm.reset_parameters()
        for linear in (self.attn.to_q, self.attn.to_k, self.attn.to_v):
            linear.reset_parameters()
        nn.init.zeros_(self.attn.to_out.weight)
        nn.init.zeros_(self.attn.to_out.bias)

    def forward(self, tokens: torch.Tensor, audio: AudioContext, frames: int) -> torch.Tensor:
        """tokens [B*T, HW, C]; every frame sees only the audio tokens of its window."""
        batch = tokens.shape[0] // frames
        token_index = audio.frame_windows  # [T, W]; padding holds N
        keys = gather_frame_windows(self.attn.to_k(audio.tokens), token_index)  # [B*T, W, C]
        values = gather_frame_windows(self.attn.to_v(audio.tokens), token_index)
        # Padding keys and values are zero, and a frame with an empty window attends to its first padding
        # slot: its attention output is then exactly zero, where a softmax over no key is undefined.
        attended = token_index < audio.tokens.shape[1]
        attended[:, 0] = True
        mask = attended.repeat(batch, 1)[:, None, None, :]  # [B*T, 1, 1, W]
        queries = self.norm(tokens)
        if self.frame_time_encoding:
            when = time_encoding(audio.frame_times, tokens.shape[-1]).to(tokens.device)
            queries = queries + when.repeat(batch, 1)[:, None, :]
        return self.attn.attend(queries, keys, values, mask=mask)


def gather_frame_windows(projected: torch.Tensor, token_index: torch.Tensor) -> torch.Tensor:
    """Projected audio tokens [B, N, C] and each frame's window [T, W] (`AudioContext.frame_windows`,
    padding = N) -> each frame's keys or values [B*T, W, C], all-zero at the padding."""
    with_zero_token = F.pad(projected, (0, 0, 0, 1))
    # index_select rather than advanced indexing: its backward (index_add) is several times faster on the CPU.
    return with_zero_token.index_select(1, token_index.flatten()).unflatten(1, token_index.shape).flatten(0, 1)


def attach_audio_adapters(
    unet: TinyVideoUNet, heads: int, context_dim: int, frame_time_encoding: bool = True
) -> nn.ModuleList:
    """Insert an audio cross-attention before every temporal attention; return them all."""
    modules = nn.ModuleList()
    for transformer in unet.transformers():
        channels = transformer.norm_self.normalized_shape[0]
        transformer.audio_cross_attn = AudioCrossAttention(channels, heads, context_dim, frame_time_encoding)
        modules.append(transformer.audio_cross_attn)
    return modules


def attach_dynamicrafter_audio_adapters(
    unet, context_dim: int, head_channels: int = 64, frame_time_encoding: bool = False
) -> nn.ModuleList:
    """One audio cross-attention (query width = the level's channels, heads of `head_channels`)
    before each of the DynamiCrafter UNet's temporal transformers; return them all. Without a frame
    time encoding by default: the paper's architecture."""
    modules = nn.ModuleList()
    for temporal in unet.temporal_transformers():
        channels = temporal.norm.num_channels
        heads = max(1, channels // head_channels)
        temporal.audio_cross_attn = AudioCrossAttention(channels, heads, context_dim, frame_time_encoding)
        modules.append(temporal.audio_cross_attn)
    return modules
