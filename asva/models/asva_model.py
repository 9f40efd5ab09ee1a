"""The ASVA model: a frozen image-to-video base and frozen audio encoders, joined by the adapters."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from asva.config.schema import ModelConfig
from asva.data.audio import MEL_BINS
from asva.models.adapters import (
    ADAPTER_PREFIXES,
    AudioProjections,
    attach_audio_adapters,
    attach_dynamicrafter_audio_adapters,
)
from asva.models.conditioning import ConvImageEncoder, HashedTextEncoder
from asva.models.dynamicrafter import DynamiCrafterUNet
from asva.models.first_stage import PCAPatchAutoencoder, frames_to_unit
from asva.models.imagebind import ImageBindAudio
from asva.models.placement import CPU_FP32, Placement
from asva.models.tiny_unet import AudioContext, TinyVideoUNet, time_encoding
from asva.models.window_mask import frame_times, window_mask


@dataclass
class AudioFeatures:
    """Tapped encoder states {(encoder, layer): [N, tokens, dim]}, each token's time [tokens], and
    which tokens are global [tokens] (they summarise the whole clip, `global_token_flags`)."""

    states: dict[tuple[str, int], torch.Tensor]
    token_times: torch.Tensor
    global_tokens: torch.Tensor

    def select(self, index: torch.Tensor | slice) -> AudioFeatures:
        return AudioFeatures(
            {tap: value[index] for tap, value in self.states.items()}, self.token_times, self.global_tokens
        )


def global_token_flags(encoder: nn.Module, num_tokens: int) -> torch.Tensor:
    """[num_tokens] True for the tokens that summarise the whole clip rather than a moment of it:
    ImageBind's CLS token, first in its sequence (`ImageBindAudio.token_times`, which gives it the
    clip's centre). BEATs and the stand-ins have patch tokens only."""
    flags = torch.zeros(num_tokens, dtype=torch.bool)
    if isinstance(encoder, ImageBindAudio):
        flags[0] = True
    return flags


@dataclass
class Conditions:
    first_latent: torch.Tensor  # [B, C, 1, h, w], concatenated to the noisy latents
    context: torch.Tensor  # [B, L, D] text + image tokens
    audio: AudioContext | None = None


class ImageToVideoBase(nn.Module):
    """First stage, text and image encoders and the denoiser: DynamiCrafter's parts, in small."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.first_stage = PCAPatchAutoencoder(cfg.latent_downsample, cfg.latent_channels)
        self.text_encoder = HashedTextEncoder(cfg.context_dim)
        self.image_encoder = ConvImageEncoder(cfg.context_dim)
        self.unet = TinyVideoUNet(
            self.first_stage.latent_channels, cfg.channels, list(cfg.channel_mult), cfg.heads, cfg.context_dim
        )

    def encode_video(self, frames_uint8: torch.Tensor) -> torch.Tensor:
        return self.first_stage.encode(frames_to_unit(frames_uint8))

    def conditions(
        self, frames_uint8: torch.Tensor, captions: list[str], drop_image: torch.Tensor, drop_text: torch.Tensor
    ) -> Conditions:
        """Image and text conditions; rows flagged in drop_* get null (zero) tokens.

        The first frame's latent is always concatenated, as DynamiCrafter does: dropping the image
        condition removes its cross-attention tokens only.
        """
        first = frames_to_unit(frames_uint8[:, :1])
        first_latent = self.first_stage.encode(first)
        image_tokens = self.image_encoder(first[:, 0]) * (~drop_image).float().to(first.device)[:, None, None]
        text_tokens = self.text_encoder(captions) * (~drop_text).float().to(first.device)[:, None, None]
        return Conditions(first_latent=first_latent, context=torch.cat([text_tokens, image_tokens], dim=1))

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: Conditions) -> torch.Tensor:
        return self.unet(noisy, timesteps, cond.first_latent, cond.context, cond.audio)


class ASVAModel(nn.Module):
    """Base + audio encoders (both frozen) + projections and audio cross-attentions (trainable).

    The base is the embedded ImageToVideoBase or the paper's DynamiCrafterBase (same interface); the
    encoders are the stand-ins or ImageBind audio / BEATs."""

    def __init__(
        self,
        base: nn.Module,
        encoders: dict[str, nn.Module],
        taps: list[tuple[str, int]],
        window_radius: float,
        fps: int,
        cfg: ModelConfig,
        fbank_frames: int,
    ):
        super().__init__()
        self.base = base
        self.encoders = nn.ModuleDict(encoders)
        for module in (self.base, self.encoders):
            module.requires_grad_(False)
            module.eval()
        self.taps = taps
        self.window_radius = window_radius
        self.fps = fps
        self.global_audio_token_every_frame = cfg.global_audio_token_every_frame
        self.audio_time_encoding = cfg.audio_time_encoding
        self._fbank_frames = fbank_frames
        self._null_audio: AudioFeatures | None = None
        self.placement = CPU_FP32  # where and in which precision it computes (`place`)
        self.audio_projections = AudioProjections(taps, {n: e.dim for n, e in encoders.items()}, cfg.context_dim)
        if isinstance(base.unet, DynamiCrafterUNet):
            self.audio_cross_attn = attach_dynamicrafter_audio_adapters(
                base.unet, cfg.context_dim, base.unet.spec.num_head_channels, cfg.frame_time_encoding
            )
        else:
            self.audio_cross_attn = attach_audio_adapters(
                base.unet, cfg.heads, cfg.context_dim, cfg.frame_time_encoding
            )

    def place(self, placement: Placement, gradient_checkpointing: bool = False) -> ASVAModel:
        """Move to the job's device and precision (asva/models/placement.py): under bf16-mixed the
        frozen parts in bf16, the adapters in fp32; optionally recompute the denoiser's blocks in
        the backward pass instead of keeping their activations."""
        placement.place(self, trainable=[self.audio_projections, self.audio_cross_attn])
        self.placement = placement
        self._null_audio = None
        self.base.unet.gradient_checkpointing = gradient_checkpointing
        return self

    def train(self, mode: bool = True) -> ASVAModel:
        """Only the adapters ever switch to training mode; the frozen parts stay in eval mode."""
        self.training = mode
        self.audio_projections.train(mode)
        self.audio_cross_attn.train(mode)
        return self

    def reset_adapters(self, seed: int) -> None:
        """Fresh adapter weights drawn from `seed` (the cross-attention outputs start at zero), drawn
        on the CPU so that they are the same on any device."""
        torch.manual_seed(seed)
        for module in [*self.audio_projections.linears.values(), *self.audio_cross_attn]:
            module.cpu().reset_parameters()
            module.to(self.placement.device)

    def adapter_parameters(self) -> list[nn.Parameter]:
        # Not via named_parameters(): the cross-attentions are registered in the UNet too, and
        # named_parameters() reports a shared parameter under its first (UNet) name only.
        return list(self.audio_projections.parameters()) + list(self.audio_cross_attn.parameters())

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.state_dict().items() if k.startswith(ADAPTER_PREFIXES)}

    def load_adapter_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        expected = set(self.adapter_state_dict())
        if set(state) != expected:
            raise ValueError(f"adapter checkpoint does not match the model: {sorted(set(state) ^ expected)[:4]} ...")
        self.load_state_dict(state, strict=False)

    def _needs_waveform(self, name: str) -> bool:
        return getattr(self.encoders[name], "input_kind", "fbank") == "waveform_16k"

    @torch.no_grad()
    def encode_audio(
        self, fbank: torch.Tensor, waveform: torch.Tensor | None = None, sample_rate: int = 16000, batch_size: int = 64
    ) -> AudioFeatures:
        """The tapped hidden states of the frozen encoders (computed once per clip and reused).

        Each encoder gets its own input: the project's filterbank (`asva.data.audio.fbank`, which is
        ImageBind's front-end; the stand-ins read it too), or for BEATs the waveform [N, S] at
        `sample_rate`, resampled to 16 kHz, through BEATs' own front-end."""
        names = sorted({name for name, _ in self.taps})
        if any(self._needs_waveform(name) for name in names):
            if waveform is None:
                raise ValueError(
                    "encode_audio: BEATs reads the waveform through its own front-end; pass waveform=clips.audio"
                )
            if sample_rate != 16000:
                import torchaudio.functional as AF

                waveform = AF.resample(waveform.float(), sample_rate, 16000)
        states: dict[tuple[str, int], list[torch.Tensor]] = {tap: [] for tap in self.taps}
        to_device = self.placement.to_device
        for start in range(0, fbank.shape[0], batch_size):
            rows = slice(start, start + batch_size)
            with self.placement.autocast():
                hidden = {
                    name: self.encoders[name](
                        to_device(waveform[rows]) if self._needs_waveform(name) else to_device(fbank[rows])
                    )
                    for name in names
                }
            for name, layer in self.taps:
                states[(name, layer)].append(hidden[name][layer])
        return AudioFeatures(
            {tap: torch.cat(chunks) for tap, chunks in states.items()}, *self._token_layout(fbank.shape[1])
        )

    @torch.no_grad()
    def null_audio(self, num_fbank_frames: int) -> AudioFeatures:
        """Features of an all-zero (normalised) filterbank: the null audio of classifier-free guidance
        (as AVSyncD), for every encoder in its own input normalisation."""
        if self._null_audio is None:
            zeros = torch.zeros(1, num_fbank_frames, MEL_BINS, device=self.placement.device)
            hidden = {
                name: self.encoders[name].null_states(num_fbank_frames)
                if self._needs_waveform(name)
                else self.encoders[name](zeros)
                for name in sorted({name for name, _ in self.taps})
            }
            states = {(name, layer): hidden[name][layer] for name, layer in self.taps}
            self._null_audio = AudioFeatures(states, *self._token_layout(num_fbank_frames))
        return self._null_audio

    def _token_layout(self, num_fbank_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Times [N] and global flags [N] of the tapped tokens, concatenated in tap order."""
        times = [self.encoders[name].token_times(num_fbank_frames) for name, _ in self.taps]
        flags = [global_token_flags(self.encoders[name], len(t)) for (name, _), t in zip(self.taps, times)]
        return torch.cat(times), torch.cat(flags)

    def audio_context(self, features: AudioFeatures, drop_audio: torch.Tensor, num_frames: int) -> AudioContext:
        """Project the tapped layers; rows flagged in drop_audio get the null audio.

        Every frame sees the tokens of its time window and, with `global_audio_token_every_frame`,
        every tap's global token (asva-eccv2024 Section 4.2 appends it to each frame's segment);
        without it a global token passes the window at its own time like a patch. With
        `audio_time_encoding` each projected token also carries its time (fixed sinusoids)."""
        states = features.states
        if drop_audio.any():  # the flags stay on the host: no device sync for this decision
            null = self.null_audio(self._fbank_frames).states
            dropped = drop_audio.to(self.placement.device)[:, None, None]
            states = {tap: torch.where(dropped, null[tap], value) for tap, value in states.items()}
        times = frame_times(num_frames, self.fps)
        mask = window_mask(times, features.token_times, self.window_radius, self.fps)
        if self.global_audio_token_every_frame:
            mask = mask | features.global_tokens.to(mask.device)
        tokens = self.audio_projections(states)
        if self.audio_time_encoding:
            when = time_encoding(features.token_times, self.audio_projections.context_dim)
            tokens = tokens + when.to(self.placement.device)
        return AudioContext(tokens=tokens, frame_mask=mask, frame_times=times)

    def conditions(
        self,
        frames_uint8: torch.Tensor,
        audio: AudioFeatures,
        captions: list[str],
        drop_image: torch.Tensor,
        drop_text: torch.Tensor,
        drop_audio: torch.Tensor,
    ) -> Conditions:
        cond = self.base.conditions(frames_uint8, captions, drop_image, drop_text)
        cond.audio = self.audio_context(audio, drop_audio, frames_uint8.shape[1])
        return cond

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: Conditions) -> torch.Tensor:
        return self.base(noisy, timesteps, cond)
