"""BEATs (iter3) audio encoder in the official key layout, returning every layer's tokens.

Written for this project from the public BEATs code (microsoft/unilm beats/BEATs.py, backbone.py).
The official `.pt` file holds {"cfg": <BEATsConfig fields>, "model": state_dict}; `load_beats`
builds the encoder from that cfg and loads the state_dict with strict=True. Always run in eval mode
(the paper freezes it). Input: 2 s of 128-bin kaldi fbank (16 kHz, 25/10 ms), normalised with
BEATs' own statistics, cut into 16 x 16 patches: 12 time x 8 frequency = 96 tokens, no CLS.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torchaudio.compliance.kaldi as kaldi
from torch import nn
from torch.nn import functional as F

from asva.errors import DataError

FBANK_MEAN = 15.41663
FBANK_STD = 6.55582
FRAME_SHIFT_S = 0.010
FRAME_LENGTH_S = 0.025


@dataclass(frozen=True)
class BEATsConfig:
    """The fields of the official BEATsConfig this implementation supports (iter3 values)."""

    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    layer_norm_first: bool = False
    deep_norm: bool = True
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = True
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True
    finetuned_model: bool = False
    predictor_class: int = 527

    @classmethod
    def from_official(cls, cfg: dict) -> BEATsConfig:
        """Keep the known fields; refuse options this implementation does not reproduce."""
        known = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in cfg.items() if k in known})
        if cfg.get("activation_fn", "gelu") != "gelu":
            raise DataError(f"BEATs cfg: activation_fn {cfg['activation_fn']!r} is not supported (gelu only)")
        if config.layer_norm_first:
            raise DataError("BEATs cfg: layer_norm_first=True is not supported (the released models use post-norm)")
        return config


def waveform_fbank(waveform: torch.Tensor, sample_rate: int = 16000) -> torch.Tensor:
    """BEATs' front-end (BEATs.preprocess): [B, S] 16 kHz in [-1, 1] -> raw [B, frames, 128]."""
    banks = [
        kaldi.fbank(
            w[None].float() * 2**15, num_mel_bins=128, sample_frequency=sample_rate, frame_length=25, frame_shift=10
        )
        for w in waveform
    ]
    return torch.stack(banks)


class SelfAttention(nn.Module):
    """BEATs MultiheadAttention: q scaled by 1/(sqrt(d) * 32), bucketed relative position bias
    (shared by all layers) gated per query (gru_rel_pos)."""

    def __init__(self, cfg: BEATsConfig, relative_attention_bias: nn.Embedding | None):
        super().__init__()
        dim, heads = cfg.encoder_embed_dim, cfg.encoder_attention_heads
        self.heads, self.head_dim = heads, dim // heads
        self.cfg = cfg
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        if cfg.relative_position_embedding:
            self.relative_attention_bias = relative_attention_bias or nn.Embedding(cfg.num_buckets, heads)
        if cfg.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def _buckets(self, relative: torch.Tensor) -> torch.Tensor:
        half = self.cfg.num_buckets // 2
        buckets = (relative > 0).long() * half
        distance = relative.abs()
        max_exact = half // 2
        large = (
            max_exact
            + (
                torch.log(distance.float().clamp(min=1) / max_exact)
                / math.log(self.cfg.max_distance / max_exact)
                * (half - max_exact)
            ).long()
        )
        large = large.clamp(max=half - 1)
        return buckets + torch.where(distance < max_exact, distance, large)

    def position_bias(self, length: int) -> torch.Tensor:
        positions = torch.arange(length, device=self.relative_attention_bias.weight.device)
        buckets = self._buckets(positions[None, :] - positions[:, None])
        return self.relative_attention_bias(buckets).permute(2, 0, 1)  # [heads, L, L]

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        batch, length, dim = x.shape
        scaling = self.head_dim**-0.5
        q = (self.q_proj(x) * scaling).unflatten(-1, (self.heads, -1)).transpose(1, 2)
        k = self.k_proj(x).unflatten(-1, (self.heads, -1)).transpose(1, 2)
        v = self.v_proj(x).unflatten(-1, (self.heads, -1)).transpose(1, 2)
        # The official code divides q by alpha=32, subtracts the row max and multiplies back by 32:
        # the same softmax as plain scaled dot products, kept that way for numerical stability.
        weights = q @ k.transpose(-1, -2)
        if bias is not None:
            if self.cfg.gru_rel_pos:
                query = q / scaling
                gate_a, gate_b = torch.sigmoid(self.grep_linear(query).unflatten(-1, (2, 4)).sum(-1)).chunk(2, dim=-1)
                gate = gate_a * (gate_b * self.grep_a - 1.0) + 2.0  # [B, H, L, 1]
                bias = gate * bias[None]
            weights = weights + bias
        out = weights.softmax(dim=-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, dim))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: BEATsConfig, shared_bias: nn.Embedding | None):
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.self_attn = SelfAttention(cfg, shared_bias)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, cfg.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.residual_scale = math.pow(2 * cfg.encoder_layers, 1 / 4) if cfg.deep_norm else 1.0

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x = self.self_attn_layer_norm(x * self.residual_scale + self.self_attn(x, bias))
        return self.final_layer_norm(x * self.residual_scale + self.fc2(F.gelu(self.fc1(x))))


class SamePad(nn.Module):
    def __init__(self, kernel: int):
        super().__init__()
        self.remove = 1 if kernel % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : -self.remove] if self.remove else x


class Encoder(nn.Module):
    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        dim = cfg.encoder_embed_dim
        conv = nn.Conv1d(dim, dim, cfg.conv_pos, padding=cfg.conv_pos // 2, groups=cfg.conv_pos_groups)
        # The official weight_norm(dim=2) keys (pos_conv.0.weight_g / weight_v).
        with warnings.catch_warnings():  # the parametrizations API would rename the keys
            warnings.simplefilter("ignore", FutureWarning)
            conv = nn.utils.weight_norm(conv, name="weight", dim=2)
        self.pos_conv = nn.Sequential(conv, SamePad(cfg.conv_pos), nn.GELU())
        first = EncoderLayer(cfg, None)
        shared = first.self_attn.relative_attention_bias if cfg.relative_position_embedding else None
        self.layers = nn.ModuleList([first] + [EncoderLayer(cfg, shared) for _ in range(cfg.encoder_layers - 1)])
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.layer_norm(x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2))
        attention = self.layers[0].self_attn
        bias = attention.position_bias(x.shape[1]) if hasattr(attention, "relative_attention_bias") else None
        hidden = []
        for layer in self.layers:
            x = layer(x, bias)
            hidden.append(x)
        return hidden


class BEATs(nn.Module):
    def __init__(self, cfg: BEATsConfig = BEATsConfig()):
        super().__init__()
        self.cfg = cfg
        self.post_extract_proj = (
            nn.Linear(cfg.embed_dim, cfg.encoder_embed_dim) if cfg.embed_dim != cfg.encoder_embed_dim else None
        )
        self.patch_embedding = nn.Conv2d(
            1, cfg.embed_dim, cfg.input_patch_size, stride=cfg.input_patch_size, bias=cfg.conv_bias
        )
        self.encoder = Encoder(cfg)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        if cfg.finetuned_model:
            self.predictor = nn.Linear(cfg.encoder_embed_dim, cfg.predictor_class)

    @property
    def dim(self) -> int:
        return self.cfg.encoder_embed_dim

    @property
    def num_layers(self) -> int:
        return self.cfg.encoder_layers

    def token_times(self, num_frames: int, mel_bins: int = 128) -> torch.Tensor:
        """Seconds of each token (time-major: 8 frequency patches per time step)."""
        patch = self.cfg.input_patch_size
        steps, bands = num_frames // patch, mel_bins // patch
        centre = (
            torch.arange(steps, dtype=torch.float64) * patch + (patch - 1) / 2
        ) * FRAME_SHIFT_S + FRAME_LENGTH_S / 2
        return centre.repeat_interleave(bands)

    # The ASVA encoder interface: BEATs reads the waveform through its own front-end (BEATs.preprocess:
    # no DC removal, povey window, waveform x 2^15), which the project's ImageBind filterbank cannot give.
    input_kind = "waveform_16k"

    def forward(self, waveform: torch.Tensor) -> list[torch.Tensor]:
        """[B, S] 16 kHz waveforms in [-1, 1] -> the tokens after every layer."""
        return self.hidden_states(waveform_fbank(waveform))

    def null_states(self, num_frames: int) -> list[torch.Tensor]:
        """The null audio of guidance: an all-zero (normalised) filterbank, as for ImageBind."""
        return self.hidden_states(
            torch.full((1, num_frames, 128), FBANK_MEAN, device=self.patch_embedding.weight.device)
        )

    def hidden_states(self, fbank: torch.Tensor) -> list[torch.Tensor]:
        """Raw kaldi fbank [B, frames, 128] -> the tokens after every layer, [B, 96, 768] for 2 s."""
        x = ((fbank - FBANK_MEAN) / (2 * FBANK_STD))[:, None]
        features = self.patch_embedding(x).flatten(2).transpose(1, 2)
        features = self.layer_norm(features)
        if self.post_extract_proj is not None:
            features = self.post_extract_proj(features)
        return self.encoder(features)


def load_beats(path: str | Path) -> BEATs:
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"BEATs checkpoint {path} does not exist (expected an official BEATs .pt with 'cfg' and 'model')"
        )
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, dict) or not {"cfg", "model"} <= set(checkpoint):
        raise DataError(f"BEATs checkpoint {path}: expected a dict with 'cfg' and 'model' entries")
    model = BEATs(BEATsConfig.from_official(dict(checkpoint["cfg"])))
    model.load_state_dict(checkpoint["model"], strict=True)
    return model.eval()
