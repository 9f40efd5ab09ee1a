"""Fréchet distance between two feature sets, and the pixel features of the embedded counterpart of FVD.

FVD is the Fréchet distance between I3D features of real and generated videos (asva/evaluation/fvd.py).
Without I3D weights the embedded default also computes the same distance on a crude video feature
(each frame pooled to 4x4 grey levels, concatenated over time): `fd_pixel_synth`, never to be read
as FVD.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg
from torch.nn import functional as F

MIN_SAMPLES = 2  # a covariance needs two samples
# Why a set distance of clips (fd_pixel_synth, FVD) is not computed for a set of fewer clips.
TOO_FEW_CLIPS = f"a Fréchet distance needs at least {MIN_SAMPLES} clips"


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance of the Gaussians fitted to two feature sets [N, D], in float64.

        d^2 = ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))

    (Heusel et al. 2017, Eq. 6 of the FID paper; FVD, Unterthiner et al. 2018, applies it to I3D
    features). The matrix square root is scipy's `linalg.sqrtm`; a nearly singular product gets
    1e-6 added to the diagonals, and the negligible imaginary part from rounding is dropped.
    """
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"frechet_distance needs two [N, D] feature sets of equal D, got {real.shape} and {fake.shape}"
        )
    if len(real) < MIN_SAMPLES or len(fake) < MIN_SAMPLES:
        raise ValueError(f"frechet_distance needs at least {MIN_SAMPLES} samples per set to estimate a covariance")
    mu_r, mu_f = real.mean(axis=0), fake.mean(axis=0)
    sigma_r, sigma_f = np.atleast_2d(np.cov(real, rowvar=False)), np.atleast_2d(np.cov(fake, rowvar=False))
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
