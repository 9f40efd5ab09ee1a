"""FID of frames (Heusel et al. 2017), optional per run (`eval.fid=true`).

The feature network is pytorch-fid's InceptionV3 (the port of the TensorFlow FID Inception,
2048-d pool3 features; its own resize to 299x299 and scaling to [-1, 1]), built here without
downloading and loaded from `eval.networks.fid_inception_checkpoint`
(pt_inception-2015-12-05-6726825d.pth). The distance is the project's `frechet_distance`.
Frames are compared as sets: every frame of every clip, at the evaluation frame rate.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch import nn

from asva.evaluation.frechet import frechet_distance

FID_FEATURE_DIM = 2048


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


def load_fid_inception(checkpoint: str | Path) -> nn.Module:
    """pytorch-fid's InceptionV3 (2048-d block) with the FID Inception weights from `checkpoint`."""
    from pytorch_fid import inception as pf

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(
            f"eval.networks.fid_inception_checkpoint={str(checkpoint)!r} does not exist: FID needs pytorch-fid's "
            "Inception weights (pt_inception-2015-12-05-6726825d.pth) at that path; they are never downloaded"
        )
    net = fid_inception_architecture()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    # InceptionV3 would build (and download) the weights itself: hand it the loaded network instead.
    with mock.patch.object(pf, "fid_inception_v3", lambda: net):
        model = pf.InceptionV3([pf.InceptionV3.BLOCK_INDEX_BY_DIM[FID_FEATURE_DIM]], use_fid_inception=True)
    return model.eval()


@torch.no_grad()
def frame_features(model: nn.Module, frames: np.ndarray, batch_size: int = 50) -> np.ndarray:
    """[..., H, W, 3] uint8 frames -> [N, 2048] pool3 features of each frame."""
    flat = np.asarray(frames).reshape(-1, *np.asarray(frames).shape[-3:])
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(flat), batch_size):
        x = torch.from_numpy(flat[start : start + batch_size]).to(device).permute(0, 3, 1, 2).float() / 255.0
        out.append(model(x)[0].flatten(1).double().cpu().numpy())
    return np.concatenate(out)


def fid(real_frames: np.ndarray, generated_frames: np.ndarray, model: nn.Module) -> float:
    """Fréchet distance between the Inception features of two sets of frames ([..., H, W, 3] uint8)."""
    return frechet_distance(frame_features(model, real_frames), frame_features(model, generated_frames))
