"""FID of frames (Heusel et al. 2017), optional per run (`eval.fid=true`).

The feature network is pytorch-fid's InceptionV3 (the port of the TensorFlow FID Inception,
2048-d pool3 features; its own resize to 299x299 and scaling to [-1, 1]), built here without
downloading and loaded from `eval.networks.fid_inception_checkpoint`
(pt_inception-2015-12-05-6726825d.pth). The distance is the project's `frechet_distance`.
Frames are compared as sets: every frame of every clip, at the evaluation frame rate. The features
are computed on the generator's device, a batch of clips at a time, and taken back to the host.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from asva.evaluation.frechet import frechet_distance

FID_FEATURE_DIM = 2048
FID_INPUT_SIZE = 299


def fid_inception_architecture() -> nn.Module:
    """pytorch-fid's `fid_inception_v3()` network, with its default (random) initialisation and no weights loaded."""
    from pytorch_fid import inception as pf

    net = pf._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = pf.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pf.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pf.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pf.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pf.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pf.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pf.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pf.FIDInceptionE_1(1280)
    net.Mixed_7c = pf.FIDInceptionE_2(2048)
    return net


class FIDInceptionFeatures(nn.Module):
    """pytorch-fid's `InceptionV3` feature extractor for the 2048-d block, over a given FID Inception:
    its input resized to 299x299 (bilinear) and scaled from [0, 1] to [-1, 1], then the layers up
    to the final average pooling. (`InceptionV3` itself builds its network by downloading the
    weights, so it is not used.)"""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.layers = nn.Sequential(
            net.Conv2d_1a_3x3,
            net.Conv2d_2a_3x3,
            net.Conv2d_2b_3x3,
            nn.MaxPool2d(kernel_size=3, stride=2),
            net.Conv2d_3b_1x1,
            net.Conv2d_4a_3x3,
            nn.MaxPool2d(kernel_size=3, stride=2),
            net.Mixed_5b,
            net.Mixed_5c,
            net.Mixed_5d,
            net.Mixed_6a,
            net.Mixed_6b,
            net.Mixed_6c,
            net.Mixed_6d,
            net.Mixed_6e,
            net.Mixed_7a,
            net.Mixed_7b,
            net.Mixed_7c,
            nn.AdaptiveAvgPool2d(output_size=(1, 1)),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [0, 1] -> [B, 2048] pool3 features."""
        x = F.interpolate(images, size=(FID_INPUT_SIZE, FID_INPUT_SIZE), mode="bilinear", align_corners=False)
        return self.layers(2 * x - 1).flatten(1)


def load_fid_inception(checkpoint: str | Path) -> FIDInceptionFeatures:
    """pytorch-fid's InceptionV3 (2048-d block) with the FID Inception weights from `checkpoint`."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(
            f"eval.networks.fid_inception_checkpoint={str(checkpoint)!r} does not exist: FID needs pytorch-fid's "
            "Inception weights (pt_inception-2015-12-05-6726825d.pth) at that path; they are never downloaded"
        )
    net = fid_inception_architecture()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return FIDInceptionFeatures(net).eval()


@torch.no_grad()
def frame_features(model: nn.Module, frames: np.ndarray, batch_size: int = 50) -> np.ndarray:
    """[..., H, W, 3] uint8 frames -> [N, 2048] pool3 features of each frame, `batch_size` frames at a
    time on the model's device."""
    flat = np.asarray(frames).reshape(-1, *np.asarray(frames).shape[-3:])
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(flat), batch_size):
        x = torch.from_numpy(flat[start : start + batch_size]).to(device).permute(0, 3, 1, 2).float() / 255.0
        out.append(model(x).double().cpu().numpy())
    return np.concatenate(out)


def fid(real_frames: np.ndarray, generated_frames: np.ndarray, model: nn.Module, batch_size: int) -> float:
    """Fréchet distance between the Inception features of two sets of clips ([N, T, H, W, 3] uint8),
    computed `batch_size` clips at a time."""
    frames = batch_size * real_frames.shape[1]
    return frechet_distance(frame_features(model, real_frames, frames), frame_features(model, generated_frames, frames))
