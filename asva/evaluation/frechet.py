"""Fréchet distance between two feature sets, and the pixel features of the embedded counterpart of FVD.

FVD is the Fréchet distance between I3D features of real and generated videos. Without I3D weights
the embedded default computes the same distance on a crude video feature (each frame pooled to
4x4 grey levels, concatenated over time): `fd_pixel_synth`, never to be read as FVD.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg
from torch.nn import functional as F


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^1/2), in float64."""
    real, fake = real.astype(np.float64), fake.astype(np.float64)
    mu_r, mu_f = real.mean(axis=0), fake.mean(axis=0)
    sigma_r, sigma_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean, _ = linalg.sqrtm(sigma_r @ sigma_f, disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(sigma_r)) * 1e-6
        covmean = linalg.sqrtm((sigma_r + offset) @ (sigma_f + offset))
    covmean = covmean.real
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(sigma_r + sigma_f - 2 * covmean))


def pixel_video_features(videos: np.ndarray) -> np.ndarray:
    """[N, T, H, W, 3] uint8 -> [N, T*16] grey levels in [0, 1], each frame average-pooled to 4x4."""
    grey = torch.from_numpy(videos).float().mean(dim=-1) / 255.0  # [N, T, H, W]
    pooled = F.adaptive_avg_pool2d(grey, 4)
    return pooled.flatten(1).numpy()
