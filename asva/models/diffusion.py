"""Noise schedules (diffusers), the training target, and multi-modal classifier-free guidance."""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from asva.config.schema import DiffusionConfig


def training_scheduler(cfg: DiffusionConfig) -> DDPMScheduler:
    return DDPMScheduler(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_schedule=cfg.beta_schedule,
        beta_start=cfg.beta_start,
        beta_end=cfg.beta_end,
        rescale_betas_zero_snr=cfg.rescale_betas_zero_snr,
        prediction_type=cfg.prediction_type,
    )


def sampling_scheduler(cfg: DiffusionConfig) -> DDIMScheduler:
    scheduler = DDIMScheduler(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_schedule=cfg.beta_schedule,
        beta_start=cfg.beta_start,
        beta_end=cfg.beta_end,
        rescale_betas_zero_snr=cfg.rescale_betas_zero_snr,
        # With zero terminal SNR the last step must reach alpha = 1 and start from the last timestep.
        timestep_spacing="trailing" if cfg.rescale_betas_zero_snr else "leading",
        prediction_type=cfg.prediction_type,
        clip_sample=False,
        set_alpha_to_one=False,
    )
    scheduler.set_timesteps(cfg.sampling_steps)
    return scheduler


def ddim_step(
    scheduler: DDIMScheduler,
    prediction: torch.Tensor,
    timestep: torch.Tensor,
    latents: torch.Tensor,
    eta: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """One DDIM update (diffusion.ddim_eta). With eta > 0 DDIM adds fresh noise at every step (eta = 1:
    DDPM's posterior variance, as DynamiCrafter samples); it is drawn from `generator` on the CPU and
    then moved, so a seed gives the same sample on any device. eta = 0 draws nothing."""
    if eta == 0:
        return scheduler.step(prediction, timestep, latents).prev_sample
    noise = torch.randn(latents.shape, generator=generator).to(latents.device, latents.dtype)
    return scheduler.step(prediction, timestep, latents, eta=eta, variance_noise=noise).prev_sample


def noised_batch(
    scheduler: DDPMScheduler,
    latents: torch.Tensor,
    generator: torch.Generator,
    rows: slice | None = None,
    batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(noisy latents, timesteps, the target the denoiser must predict).

    With `rows`, `latents` are those rows of a batch of `batch_size`: the noise and timesteps of the
    whole batch are drawn (so every data-parallel rank draws what one process would) and the rows' kept.
    """
    drawn = latents.shape[0] if batch_size is None else batch_size
    # Drawn on the generator's device (the CPU), then moved: the same noise on any device.
    noise = torch.randn((drawn, *latents.shape[1:]), generator=generator)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (drawn,), generator=generator)
    if rows is not None:
        noise, timesteps = noise[rows], timesteps[rows]
    noise, timesteps = noise.to(latents.device, latents.dtype), timesteps.to(latents.device)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    if scheduler.config.prediction_type == "v_prediction":
        return noisy, timesteps, scheduler.get_velocity(latents, noise, timesteps)
    return noisy, timesteps, noise


def drop_masks(
    batch: int, probability: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Independent image / text / audio dropout flags for classifier-free guidance training."""
    flags = torch.rand(3, batch, generator=generator) < probability
    return flags[0], flags[1], flags[2]


def guided_prediction(
    unconditional: torch.Tensor,
    image: torch.Tensor,
    image_text: torch.Tensor,
    image_text_audio: torch.Tensor,
    cfg: DiffusionConfig,
) -> torch.Tensor:
    """Multi-modal classifier-free guidance, one scale per modality, each added on the previous:

    e = e(0) + s_img [e(I) - e(0)] + s_txt [e(I,T) - e(I)] + s_aud [e(I,T,A) - e(I,T)]
    """
    return (
        unconditional
        + cfg.guidance_image * (image - unconditional)
        + cfg.guidance_text * (image_text - image)
        + cfg.guidance_audio * (image_text_audio - image_text)
    )
