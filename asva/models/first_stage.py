"""The first stage (image <-> latent) of the embedded model.

DynamiCrafter uses a KL autoencoder (diffusers AutoencoderKL, latents scaled by 0.18215). The tiny
model uses a linear patch autoencoder instead: each f x f pixel patch is projected on the top
principal components of the training frames' patches (fitted once, in closed form, with the base),
and the latent is scaled to unit variance. Same contract as the VAE (frames in [-1, 1] <-> a small
latent grid with few channels), no trained network. Few latent channels matter: a denoiser must
carry every latent channel of noise through its width.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class PCAPatchAutoencoder(nn.Module):
    def __init__(self, factor: int, latent_channels: int):
        super().__init__()
        self.factor = factor
        self.latent_channels = latent_channels
        patch = 3 * factor * factor
        self.register_buffer("mean", torch.zeros(patch))
        self.register_buffer("components", torch.eye(patch)[:, :latent_channels].clone())
        self.register_buffer("scale", torch.ones(()))

    @torch.no_grad()
    def fit(self, frames: torch.Tensor, max_patches: int = 200_000) -> None:
        """Principal components of the patches of frames [N, T, 3, H, W] in [-1, 1]."""
        patches = self._patches(frames.flatten(0, 1))
        if len(patches) > max_patches:
            patches = patches[torch.randperm(len(patches), generator=torch.Generator().manual_seed(0))[:max_patches]]
        self.mean.copy_(patches.mean(dim=0))
        _, eigenvectors = torch.linalg.eigh(torch.cov((patches - self.mean).T))
        self.components.copy_(eigenvectors.flip(1)[:, : self.latent_channels])
        self.scale.copy_(((patches - self.mean) @ self.components).std())

    def _patches(self, images: torch.Tensor) -> torch.Tensor:
        unshuffled = F.pixel_unshuffle(images, self.factor)  # [B, 3ff, h, w]
        return unshuffled.permute(0, 2, 3, 1).reshape(-1, unshuffled.shape[1])

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, T, 3, H, W] in [-1, 1] -> [B, C, T, H/f, W/f]."""
        batch, time, _, height, width = frames.shape
        h, w = height // self.factor, width // self.factor
        codes = (self._patches(frames.flatten(0, 1)) - self.mean) @ self.components / self.scale
        return codes.reshape(batch, time, h, w, -1).permute(0, 4, 1, 2, 3)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """[B, C, T, h, w] -> [B, T, 3, H, W]."""
        batch, _, time, h, w = latents.shape
        patches = (
            latents.permute(0, 2, 3, 4, 1).reshape(-1, self.latent_channels) * self.scale @ self.components.T
            + self.mean
        )
        images = F.pixel_shuffle(patches.reshape(batch * time, h, w, -1).permute(0, 3, 1, 2), self.factor)
        return images.unflatten(0, (batch, time))


def frames_to_unit(frames_uint8: torch.Tensor) -> torch.Tensor:
    """[B, T, H, W, 3] uint8 -> [B, T, 3, H, W] float in [-1, 1]."""
    return frames_uint8.permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0


def unit_to_frames(frames: torch.Tensor) -> torch.Tensor:
    """[B, T, 3, H, W] in [-1, 1] -> [B, T, H, W, 3] uint8."""
    return ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 1, 3, 4, 2)
