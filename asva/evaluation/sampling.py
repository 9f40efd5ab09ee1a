"""DDIM sampling with multi-modal classifier-free guidance."""

from __future__ import annotations

import torch

from asva.config.schema import DiffusionConfig
from asva.models.asva_model import ASVAModel, AudioFeatures, Conditions
from asva.models.diffusion import ddim_step, guided_prediction, sampling_scheduler
from asva.models.first_stage import unit_to_frames
from asva.models.tiny_unet import AudioContext


def _stack(conditions: list[Conditions]) -> Conditions:
    audio = [c.audio for c in conditions]
    return Conditions(
        first_latent=torch.cat([c.first_latent for c in conditions]),
        context=torch.cat([c.context for c in conditions]),
        audio=AudioContext(torch.cat([a.tokens for a in audio]), audio[0].frame_mask, audio[0].frame_times),
    )


@torch.no_grad()
def denoise(
    model: ASVAModel,
    frames_uint8: torch.Tensor,
    audio: AudioFeatures,
    captions: list[str],
    cfg: DiffusionConfig,
    generator: torch.Generator,
    use_audio: bool = True,
) -> torch.Tensor:
    """Animate the first frame of each clip: the DDIM loop with 4-way guidance; the final latents,
    on the model's device (`latents_to_frames` makes them a video).

    With use_audio=False the audio condition is the null audio everywhere, so the audio guidance
    term vanishes: the same model, sampled without its audio. Runs in the model's precision, the
    guidance and the DDIM update in fp32. The starting noise is drawn on the CPU generator, so it is
    the same on any device.
    """
    placement = model.placement
    frames_uint8 = placement.to_device(frames_uint8)
    batch = frames_uint8.shape[0]
    keep, drop = torch.zeros(batch, dtype=torch.bool), torch.ones(batch, dtype=torch.bool)
    # Drop flags (image, text, audio) of e(0), e(I), e(I,T) and e(I,T,A).
    variants = [(drop, drop, drop), (keep, drop, drop), (keep, keep, drop)]
    if use_audio:
        variants.append((keep, keep, keep))
    with placement.autocast():
        conds = [
            model.conditions(frames_uint8, audio, captions, drop_image=image, drop_text=text, drop_audio=sound)
            for image, text, sound in variants
        ]
    stacked = _stack(conds)
    scheduler = sampling_scheduler(cfg)
    first_latent = conds[0].first_latent
    shape = (batch, first_latent.shape[1], frames_uint8.shape[1], *first_latent.shape[3:])
    latents = torch.randn(shape, generator=generator).to(placement.device)
    for timestep in scheduler.timesteps:
        repeated = latents.repeat(len(variants), 1, 1, 1, 1)
        with placement.autocast():
            output = model(repeated, timestep.repeat(len(repeated)).to(placement.device), stacked)
        prediction = output.float().chunk(len(variants))
        with_audio = prediction[3] if use_audio else prediction[2]
        guided = guided_prediction(prediction[0], prediction[1], prediction[2], with_audio, cfg)
        latents = ddim_step(scheduler, guided, timestep, latents, cfg.ddim_eta, generator)
    return latents


@torch.no_grad()
def latents_to_frames(model: ASVAModel, latents: torch.Tensor) -> torch.Tensor:
    """The video of `denoise`'s latents: [B, T, H, W, 3] uint8, on the CPU."""
    with model.placement.autocast():
        decoded = model.base.first_stage.decode(latents)
    return unit_to_frames(decoded.float()).cpu()
