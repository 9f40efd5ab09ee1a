"""The embedded denoiser: a small video UNet in DynamiCrafter's layout.

Per resolution level: a ResBlock (spatial convolution + temporal convolution), then a transformer
of spatial self-attention, cross-attention to the text and image tokens, an optional audio
cross-attention slot (filled by the adapters, `asva/models/adapters.py`) and temporal attention.
The audio slot sits right before temporal attention, as in scaling-up-asva Fig. 3. The first
frame's latent is concatenated to the noisy latents along channels (DynamiCrafter's image
conditioning, next to the image tokens in cross-attention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from asva.models.attention import Attention


@dataclass
class AudioContext:
    """Projected audio tokens [B, N, D] (on the model's device), per frame which tokens it may see
    [T, N] and frame times [T] (s), both on the host: they are the window's layout, not activations.

    `frame_mask` holds the time window (asva/models/window_mask.py) and, when the model shows them to
    every frame, the clip-level global tokens."""

    tokens: torch.Tensor
    frame_mask: torch.Tensor
    frame_times: torch.Tensor

    @cached_property
    def frame_windows(self) -> torch.Tensor:
        """Each frame's visible tokens as a padded list of token indices [T, W], W being the widest
        window (at least 1); padding entries hold N, one past the last token. On the tokens' device.

        Lets the audio cross-attention gather each frame's few keys instead of masking all N. Cached:
        every audio cross-attention of a forward pass reads the same windows. Computed on the host,
        where the mask lives (its width decides a shape), then moved: no device sync per forward."""
        frame_mask = self.frame_mask.cpu()
        visible_counts = frame_mask.sum(dim=1)
        width = max(1, int(visible_counts.max()))
        # A stable sort brings each row's visible tokens to the front, in token order.
        token_index = torch.argsort(~frame_mask, dim=1, stable=True)[:, :width]
        padding = torch.arange(width) >= visible_counts[:, None]
        return token_index.masked_fill(padding, frame_mask.shape[1]).to(self.tokens.device)


def time_encoding(times_s: torch.Tensor, dim: int) -> torch.Tensor:
    """[N] seconds -> [N, dim] sinusoids with periods from 2 s down to 1/32 s."""
    freqs = 2 * math.pi * torch.logspace(math.log10(0.5), math.log10(32.0), dim // 2)
    args = times_s.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


def timestep_embedding(timesteps: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def run_block(block: nn.Module, *inputs, checkpointed: bool = False):
    """`block(*inputs)`; checkpointed (train.gradient_checkpointing), its activations are recomputed
    in the backward pass instead of kept, and the audio adapters inside it still get their gradients."""
    if checkpointed and torch.is_grad_enabled():
        return checkpoint(block, *inputs, use_reentrant=False)
    return block(*inputs)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    """Spatial 3x3 convolutions with the timestep added, then a residual temporal convolution."""

    def __init__(self, in_ch: int, out_ch: int, temb_dim: int):
        super().__init__()
        self.in_layers = nn.Sequential(_norm(in_ch), nn.SiLU(), nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.temb = nn.Linear(temb_dim, out_ch)
        self.out_layers = nn.Sequential(_norm(out_ch), nn.SiLU(), nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.temporal_conv = nn.Sequential(
            _norm(out_ch), nn.SiLU(), nn.Conv3d(out_ch, out_ch, (3, 1, 1), padding=(1, 0, 0))
        )

    def forward(self, x: torch.Tensor, temb: torch.Tensor, frames: int) -> torch.Tensor:
        """x [B*T, C, H, W], temb [B*T, E]."""
        h = self.in_layers(x) + self.temb(temb)[:, :, None, None]
        h = self.out_layers(h) + self.skip(x)
        video = h.unflatten(0, (-1, frames)).transpose(1, 2)  # [B, C, T, H, W]
        video = video + self.temporal_conv(video)
        return video.transpose(1, 2).flatten(0, 1)


class VideoTransformer(nn.Module):
    def __init__(self, channels: int, heads: int, context_dim: int):
        super().__init__()
        self.norm_self = nn.LayerNorm(channels)
        self.self_attn = Attention(channels, heads)
        self.norm_cross = nn.LayerNorm(channels)
        self.cross_attn = Attention(channels, heads, context_dim)
        self.norm_ff = nn.LayerNorm(channels)
        self.ff = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(), nn.Linear(2 * channels, channels))
        self.audio_cross_attn: nn.Module | None = None  # set by asva.models.adapters.attach_audio_adapters
        self.norm_temporal = nn.LayerNorm(channels)
        self.temporal_attn = Attention(channels, heads)
        self.temporal_pos = nn.Parameter(torch.zeros(1, 64, channels))

    def forward(self, x: torch.Tensor, context: torch.Tensor, frames: int, audio: AudioContext | None) -> torch.Tensor:
        """x [B*T, C, H, W]; context [B, L, D] (text and image tokens)."""
        bt, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # [B*T, HW, C]
        frame_context = context.repeat_interleave(frames, dim=0)
        tokens = tokens + self.self_attn(self.norm_self(tokens))
        tokens = tokens + self.cross_attn(self.norm_cross(tokens), frame_context)
        tokens = tokens + self.ff(self.norm_ff(tokens))
        if self.audio_cross_attn is not None and audio is not None:
            tokens = tokens + self.audio_cross_attn(tokens, audio, frames)
        # Temporal attention: each spatial position attends over the frames.
        per_pixel = tokens.unflatten(0, (-1, frames)).permute(0, 2, 1, 3).flatten(0, 1)  # [B*HW, T, C]
        per_pixel = per_pixel + self.temporal_pos[:, :frames]
        per_pixel = per_pixel + self.temporal_attn(self.norm_temporal(per_pixel))
        tokens = per_pixel.unflatten(0, (-1, height * width)).permute(0, 2, 1, 3).flatten(0, 1)
        return tokens.transpose(1, 2).reshape(bt, channels, height, width)


class TinyVideoUNet(nn.Module):
    """Predicts noise (or v) for video latents [B, C, T, h, w] given the first frame's latent."""

    def __init__(self, latent_channels: int, channels: int, channel_mult: list[int], heads: int, context_dim: int):
        super().__init__()
        self.latent_channels = latent_channels
        widths = [channels * m for m in channel_mult]
        temb_dim = 4 * channels
        self.base_channels = channels
        self.time_embed = nn.Sequential(nn.Linear(channels, temb_dim), nn.SiLU(), nn.Linear(temb_dim, temb_dim))
        self.conv_in = nn.Conv2d(2 * latent_channels, widths[0], 3, padding=1)
        self.down_res, self.down_attn, self.downsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        previous = widths[0]
        for level, width in enumerate(widths):
            self.down_res.append(ResBlock(previous, width, temb_dim))
            self.down_attn.append(VideoTransformer(width, heads, context_dim))
            last = level == len(widths) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(width, width, 3, stride=2, padding=1))
            previous = width
        self.mid = ResBlock(previous, previous, temb_dim)
        self.up_res, self.up_attn, self.upsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            self.up_res.append(ResBlock(previous + width, width, temb_dim))
            self.up_attn.append(VideoTransformer(width, heads, context_dim))
            first = level == 0
            self.upsample.append(nn.Identity() if first else nn.Upsample(scale_factor=2, mode="nearest"))
            previous = width
        self.out = nn.Sequential(_norm(previous), nn.SiLU(), nn.Conv2d(previous, latent_channels, 3, padding=1))
        self.gradient_checkpointing = False  # set by the job (train.gradient_checkpointing)

    def transformers(self) -> list[VideoTransformer]:
        return list(self.down_attn) + list(self.up_attn)

    def forward(
        self,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
        first_frame_latent: torch.Tensor,
        context: torch.Tensor,
        audio: AudioContext | None = None,
    ) -> torch.Tensor:
        batch, _, frames, height, width = noisy.shape
        x = torch.cat([noisy, first_frame_latent.expand_as(noisy)], dim=1)
        x = x.transpose(1, 2).flatten(0, 1)  # [B*T, 2C, h, w]
        temb = self.time_embed(timestep_embedding(timesteps, self.base_channels)).repeat_interleave(frames, dim=0)
        h = self.conv_in(x)
        skips = []
        checkpointed = self.gradient_checkpointing
        for res, attn, down in zip(self.down_res, self.down_attn, self.downsample):
            h = run_block(res, h, temb, frames, checkpointed=checkpointed)
            h = run_block(attn, h, context, frames, audio, checkpointed=checkpointed)
            skips.append(h)
            h = down(h)
        h = run_block(self.mid, h, temb, frames, checkpointed=checkpointed)
        for res, attn, up in zip(self.up_res, self.up_attn, self.upsample):
            h = run_block(res, torch.cat([h, skips.pop()], dim=1), temb, frames, checkpointed=checkpointed)
            h = run_block(attn, h, context, frames, audio, checkpointed=checkpointed)
            h = up(h)
        out = self.out(h)
        return out.unflatten(0, (batch, frames)).transpose(1, 2)
