"""DynamiCrafter's video denoiser and image projector, in the original (lvdm) module layout.

Written for this project from the public DynamiCrafter code (lvdm/modules/networks/openaimodel3d.py,
lvdm/modules/attention.py, lvdm/modules/encoders/resampler.py): every module has the attribute
names and parameter shapes of the official one, so that `model.diffusion_model.*` and
`image_proj_model.*` of the official `model.ckpt` load with strict=True after the key mapping in
`asva/models/checkpoints.py`. Differences from the official code, none of which changes a weight:

- attention runs through torch's scaled_dot_product_attention (no xformers, no checkpointing);
- the temporal convolution is called `temporal_conv` (official: `temopral_conv`) and the frame-stride
  embedding `fps_embedding` (the 256 checkpoint: `framestride_embed`); the mapping renames them;
- every TemporalTransformer of the UNet's levels has an empty `audio_cross_attn` slot that the ASVA
  adapters fill (scaling-up-asva Fig. 3: audio cross-attention right before temporal attention).
  The extra `init_attn` temporal transformer after the input convolution gets no slot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from asva.models.tiny_unet import AudioContext, run_block

TEXT_TOKENS = 77  # OpenCLIP's context length: the first 77 context tokens are text, the rest image


@dataclass(frozen=True)
class UNetSpec:
    """The UNet's `unet_config.params` (defaults: configs/inference_256_v1.0.yaml)."""

    in_channels: int = 8
    out_channels: int = 4
    model_channels: int = 320
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    num_res_blocks: int = 2
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_head_channels: int = 64
    transformer_depth: int = 1
    context_dim: int = 1024
    temporal_length: int = 16
    addition_attention: bool = True
    image_cross_attention: bool = True
    image_cross_attention_scale_learnable: bool = True
    fs_condition: bool = True
    default_fs: int = 3
    # Width of GroupNorm groups; 32 in lvdm (`normalization`), smaller only for tiny test models.
    norm_groups: int = 32
    image_tokens_per_frame: int = 16


@dataclass(frozen=True)
class ResamplerSpec:
    """`image_proj_stage_config.params` (identical in the 256 and 512 configs)."""

    dim: int = 1024
    depth: int = 4
    dim_head: int = 64
    heads: int = 12
    num_queries: int = 16
    embedding_dim: int = 1280
    output_dim: int = 1024
    ff_mult: int = 4
    video_length: int | None = 16


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _zero(module: nn.Module) -> nn.Module:
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module


class CrossAttention(nn.Module):
    """lvdm CrossAttention; with image_cross_attention the context is [77 text | image tokens]."""

    def __init__(
        self,
        query_dim: int,
        context_dim: int | None,
        heads: int,
        dim_head: int,
        dropout: float = 0.0,
        image_cross_attention: bool = False,
        image_cross_attention_scale_learnable: bool = False,
    ):
        super().__init__()
        inner = heads * dim_head
        context_dim = context_dim or query_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(dropout))
        self.image_cross_attention = image_cross_attention
        self.scale_learnable = image_cross_attention_scale_learnable
        if image_cross_attention:
            self.to_k_ip = nn.Linear(context_dim, inner, bias=False)
            self.to_v_ip = nn.Linear(context_dim, inner, bias=False)
            if image_cross_attention_scale_learnable:
                self.alpha = nn.Parameter(torch.tensor(0.0))

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        q = self.to_q(x)
        if context is None:
            return self.to_out(self._attend(q, self.to_k(x), self.to_v(x)))
        text = context[:, :TEXT_TOKENS]
        out = self._attend(q, self.to_k(text), self.to_v(text))
        if self.image_cross_attention:
            image = context[:, TEXT_TOKENS:]
            out_ip = self._attend(q, self.to_k_ip(image), self.to_v_ip(image))
            out = out + out_ip * (torch.tanh(self.alpha) + 1 if self.scale_learnable else 1.0)
        return self.to_out(out)


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, dropout: float = 0.0, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Dropout(dropout), nn.Linear(dim * mult, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    def __init__(
        self, dim: int, heads: int, dim_head: int, context_dim: int | None, dropout: float = 0.0, **image_kwargs
    ):
        super().__init__()
        self.attn1 = CrossAttention(dim, None, heads, dim_head, dropout)
        self.ff = FeedForward(dim, dropout)
        self.attn2 = CrossAttention(dim, context_dim, heads, dim_head, dropout, **image_kwargs)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class _TokenTransformer(nn.Module):
    """What lvdm's spatial and temporal transformers share (use_linear=True): GroupNorm, a linear
    projection to `heads * dim_head` channels, `spec.transformer_depth` blocks and a zero-initialised
    projection back, so that a new transformer starts as the identity."""

    def __init__(
        self,
        channels: int,
        heads: int,
        dim_head: int,
        spec: UNetSpec,
        dropout: float,
        context_dim: int | None,
        **image_kwargs,
    ):
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.GroupNorm(spec.norm_groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, heads, dim_head, context_dim, dropout, **image_kwargs)
            for _ in range(spec.transformer_depth)
        )
        self.proj_out = _zero(nn.Linear(inner, channels))


class SpatialTransformer(_TokenTransformer):
    """Per-frame self-attention and cross-attention to text and image tokens."""

    def __init__(self, channels: int, heads: int, dim_head: int, spec: UNetSpec, dropout: float):
        super().__init__(
            channels,
            heads,
            dim_head,
            spec,
            dropout,
            spec.context_dim,
            image_cross_attention=spec.image_cross_attention,
            image_cross_attention_scale_learnable=spec.image_cross_attention_scale_learnable,
        )

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x [(B T), C, H, W]; context [(B T), L, D]."""
        height, width = x.shape[-2:]
        h = self.proj_in(self.norm(x).flatten(2).transpose(1, 2))
        for block in self.transformer_blocks:
            h = block(h, context)
        return x + self.proj_out(h).transpose(1, 2).unflatten(2, (height, width))


class TemporalTransformer(_TokenTransformer):
    """Self-attention over frames at every spatial position (only_self_att, no relative position).

    `audio_cross_attn`, when the adapters fill it, runs first: the frames' spatial tokens attend to
    the audio tokens of their window, and the result is added to the input of temporal attention.
    """

    def __init__(self, channels: int, heads: int, dim_head: int, spec: UNetSpec, dropout: float):
        super().__init__(channels, heads, dim_head, spec, dropout, context_dim=None)
        self.audio_cross_attn: nn.Module | None = None

    def forward(self, x: torch.Tensor, frames: int, audio: AudioContext | None = None) -> torch.Tensor:
        """x [(B T), C, H, W] -> same shape."""
        bt, channels, height, width = x.shape
        if self.audio_cross_attn is not None and audio is not None:
            tokens = x.flatten(2).transpose(1, 2)
            tokens = tokens + self.audio_cross_attn(tokens, audio, frames)
            x = tokens.transpose(1, 2).reshape(bt, channels, height, width)
        video = x.unflatten(0, (-1, frames))  # [B, T, C, H, W]
        normed = self.norm(video.transpose(1, 2)).transpose(1, 2)
        per_pixel = normed.permute(0, 3, 4, 1, 2).flatten(0, 2)  # [(B H W), T, C]
        h = self.proj_in(per_pixel)
        for block in self.transformer_blocks:
            h = block(h)
        h = self.proj_out(h).unflatten(0, (-1, height, width)).permute(0, 3, 4, 1, 2)  # [B, T, C, H, W]
        return x + h.flatten(0, 1)


class TemporalConvBlock(nn.Module):
    """Four residual (3,1,1) convolutions over time; the last starts at zero."""

    def __init__(self, channels: int, groups: int, dropout: float = 0.1):
        super().__init__()

        def conv(with_dropout: bool) -> nn.Sequential:
            layers: list[nn.Module] = [nn.GroupNorm(groups, channels), nn.SiLU()]
            if with_dropout:
                layers.append(nn.Dropout(dropout))
            layers.append(nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0)))
            return nn.Sequential(*layers)

        self.conv1, self.conv2, self.conv3, self.conv4 = conv(False), conv(True), conv(True), conv(True)
        _zero(self.conv4[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv4(self.conv3(self.conv2(self.conv1(x))))


class ResBlock(nn.Module):
    def __init__(self, channels: int, emb_channels: int, out_channels: int, spec: UNetSpec, dropout: float):
        super().__init__()
        groups = spec.norm_groups
        self.in_layers = nn.Sequential(
            nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            nn.GroupNorm(groups, out_channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            _zero(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        self.temporal_conv = TemporalConvBlock(out_channels, groups)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, frames: int) -> torch.Tensor:
        h = self.in_layers(x) + self.emb_layers(emb)[:, :, None, None]
        h = self.skip_connection(x) + self.out_layers(h)
        video = h.unflatten(0, (-1, frames)).transpose(1, 2)  # [B, C, T, H, W]
        return self.temporal_conv(video).transpose(1, 2).flatten(0, 1)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class TimestepEmbedSequential(nn.Sequential):
    def forward(self, x, emb, context, frames, audio=None):  # noqa: D102 (same as nn.Sequential)
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb, frames)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, TemporalTransformer):
                x = layer(x, frames, audio)
            else:
                x = layer(x)
        return x


class DynamiCrafterUNet(nn.Module):
    """lvdm `UNetModel` with the options DynamiCrafter's configs use (use_linear, temporal_conv,
    addition_attention, image cross-attention, frame-stride conditioning)."""

    def __init__(self, spec: UNetSpec = UNetSpec(), dropout: float = 0.1):
        super().__init__()
        self.gradient_checkpointing = False  # set by the job (train.gradient_checkpointing)
        self.spec = spec
        mc = spec.model_channels
        emb_dim = mc * 4
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if spec.fs_condition:
            self.fps_embedding = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
            _zero(self.fps_embedding[-1])
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(spec.in_channels, mc, 3, padding=1))])
        if spec.addition_attention:
            self.init_attn = TimestepEmbedSequential(TemporalTransformer(mc, 8, spec.num_head_channels, spec, dropout))

        def attention(ch: int) -> list[nn.Module]:
            heads = ch // spec.num_head_channels
            return [
                SpatialTransformer(ch, heads, spec.num_head_channels, spec, dropout),
                TemporalTransformer(ch, heads, spec.num_head_channels, spec, dropout),
            ]

        chans = [mc]
        ch, ds = mc, 1
        for level, mult in enumerate(spec.channel_mult):
            for _ in range(spec.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb_dim, mult * mc, spec, dropout)]
                ch = mult * mc
                if ds in spec.attention_resolutions:
                    layers += attention(ch)
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                chans.append(ch)
            if level != len(spec.channel_mult) - 1:
                self.input_blocks.append(TimestepEmbedSequential(Downsample(ch)))
                chans.append(ch)
                ds *= 2
        self.middle_block = TimestepEmbedSequential(
            ResBlock(ch, emb_dim, ch, spec, dropout), *attention(ch), ResBlock(ch, emb_dim, ch, spec, dropout)
        )
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(spec.channel_mult))[::-1]:
            for index in range(spec.num_res_blocks + 1):
                layers = [ResBlock(ch + chans.pop(), emb_dim, mc * mult, spec, dropout)]
                ch = mc * mult
                if ds in spec.attention_resolutions:
                    layers += attention(ch)
                if level and index == spec.num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(
            nn.GroupNorm(spec.norm_groups, ch), nn.SiLU(), _zero(nn.Conv2d(mc, spec.out_channels, 3, padding=1))
        )

    def temporal_transformers(self) -> list[TemporalTransformer]:
        """The temporal attentions of the UNet's levels, in forward order (init_attn excluded)."""
        blocks = [*self.input_blocks, self.middle_block, *self.output_blocks]
        return [layer for block in blocks for layer in block if isinstance(layer, TemporalTransformer)]

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        fs: torch.Tensor | None = None,
        audio: AudioContext | None = None,
    ) -> torch.Tensor:
        """x [B, in_channels, T, H, W] (noisy latents and the concatenated image latent);
        context [B, 77 + image tokens, D]; fs the frame stride (fps for the 512 model) per sample."""
        batch, _, frames, _, _ = x.shape
        spec = self.spec
        emb = self.time_embed(timestep_embedding(timesteps, spec.model_channels).to(x.dtype))
        if context.shape[1] == TEXT_TOKENS + frames * spec.image_tokens_per_frame:
            # One group of image tokens per frame (the Resampler's video_length queries).
            text = context[:, :TEXT_TOKENS].repeat_interleave(frames, dim=0)
            image = context[:, TEXT_TOKENS:].unflatten(1, (frames, -1)).flatten(0, 1)
            context = torch.cat([text, image], dim=1)
        else:
            context = context.repeat_interleave(frames, dim=0)
        if spec.fs_condition:
            if fs is None:
                fs = torch.full((batch,), spec.default_fs, dtype=torch.long, device=x.device)
            emb = emb + self.fps_embedding(timestep_embedding(fs, spec.model_channels).to(x.dtype))
        emb = emb.repeat_interleave(frames, dim=0)
        h = x.transpose(1, 2).flatten(0, 1)
        skips = []
        checkpointed = self.gradient_checkpointing
        for index, block in enumerate(self.input_blocks):
            h = run_block(block, h, emb, context, frames, audio, checkpointed=checkpointed)
            if index == 0 and spec.addition_attention:
                h = run_block(self.init_attn, h, emb, context, frames, checkpointed=checkpointed)
            skips.append(h)
        h = run_block(self.middle_block, h, emb, context, frames, audio, checkpointed=checkpointed)
        for block in self.output_blocks:
            h = run_block(
                block, torch.cat([h, skips.pop()], dim=1), emb, context, frames, audio, checkpointed=checkpointed
            )
        return self.out(h).unflatten(0, (batch, frames)).transpose(1, 2)


class PerceiverAttention(nn.Module):
    def __init__(self, dim: int, dim_head: int, heads: int):
        super().__init__()
        inner = dim_head * heads
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        x, latents = self.norm1(x), self.norm2(latents)
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat([x, latents], dim=1)).chunk(2, dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).flatten(2))


class Resampler(nn.Module):
    """DynamiCrafter's image projector: CLIP image tokens -> num_queries tokens per frame."""

    def __init__(self, spec: ResamplerSpec = ResamplerSpec()):
        super().__init__()
        queries = spec.num_queries * (spec.video_length or 1)
        self.latents = nn.Parameter(torch.randn(1, queries, spec.dim) / spec.dim**0.5)
        self.proj_in = nn.Linear(spec.embedding_dim, spec.dim)
        self.proj_out = nn.Linear(spec.dim, spec.output_dim)
        self.norm_out = nn.LayerNorm(spec.output_dim)
        inner = spec.dim * spec.ff_mult
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    PerceiverAttention(spec.dim, spec.dim_head, spec.heads),
                    nn.Sequential(
                        nn.LayerNorm(spec.dim),
                        nn.Linear(spec.dim, inner, bias=False),
                        nn.GELU(),
                        nn.Linear(inner, spec.dim, bias=False),
                    ),
                ]
            )
            for _ in range(spec.depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        latents = self.latents.repeat(x.shape[0], 1, 1)
        x = self.proj_in(x)
        for attn, ff in self.layers:
            latents = latents + attn(x, latents)
            latents = latents + ff(latents)
        return self.norm_out(self.proj_out(latents))
