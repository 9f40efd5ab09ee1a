"""FVD: the Fréchet distance between I3D features of real and generated clips.

The I3D network is StyleGAN-V's TorchScript export (`i3d_torchscript.pt`, the Kinetics-400 I3D that
the FVD reference implementation uses), loaded from a path: `load_i3d(path)`. The ASVA papers
compute FVD the way their released evaluation does, which this module follows:

- input: every clip at 6 FPS, all 12 frames of the 2 s clip (no temporal crop or padding);
- resizing: each frame resized to 224x224 (bicubic, antialiased; the clips are square, so the
  following 224 center crop keeps everything), values mapped from [0, 255] to [-1, 1];
- the network is called as `i3d(videos, rescale=False, resize=False, return_features=True)` on
  [B, 3, T, 224, 224] and returns a 400-d feature per clip (the logits layer before softmax);
- the distance (asva/evaluation/frechet.py) is taken over all clips of the split at once, in float64.

The features are computed on the generator's device, `eval.batch_size` clips at a time (resized on
the host first), and taken back to the host for the statistics.

The embedded default has no I3D weights; `fvd_embedded` runs the same code on a small R(2+1)D
video classifier trained here (asva/evaluation/standins.py) with its own input size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.nn import functional as F

from asva.errors import DataError
from asva.evaluation.frechet import frechet_distance

I3D_SIZE = 224


class VideoFeatureNet(Protocol):
    """What FVD needs of a feature network: [B, 3, T, S, S] in [-1, 1] -> [B, D], on its device."""

    input_size: int

    def features(self, videos: torch.Tensor) -> torch.Tensor: ...

    def to(self, device: torch.device) -> VideoFeatureNet: ...


class TorchScriptI3D:
    """StyleGAN-V's I3D TorchScript behind the VideoFeatureNet interface."""

    input_size = I3D_SIZE

    def __init__(self, module: torch.jit.ScriptModule):
        self.module = module

    @torch.no_grad()
    def features(self, videos: torch.Tensor) -> torch.Tensor:
        return self.module(videos, rescale=False, resize=False, return_features=True)

    def to(self, device: torch.device) -> TorchScriptI3D:
        self.module.to(device)
        return self


def load_i3d(path: str | Path) -> TorchScriptI3D:
    """Load `i3d_torchscript.pt` (StyleGAN-V) from a path; a clear error names a missing file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"eval.i3d_checkpoint: {path} does not exist (StyleGAN-V's i3d_torchscript.pt)")
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as error:
        raise DataError(f"eval.i3d_checkpoint: {path} is not a TorchScript file ({error})") from None
    return TorchScriptI3D(module.eval())


def preprocess(videos: np.ndarray, size: int) -> torch.Tensor:
    """[N, T, H, W, 3] uint8 -> [N, 3, T, size, size] float in [-1, 1] (bicubic, antialiased)."""
    frames = torch.from_numpy(np.ascontiguousarray(videos)).float() / 255.0
    n, t, h, w, _ = frames.shape
    flat = frames.reshape(n * t, h, w, 3).permute(0, 3, 1, 2)
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    flat = flat[:, :, top : top + side, left : left + side]
    if side != size:
        flat = F.interpolate(flat, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    return (flat * 2 - 1).reshape(n, t, 3, size, size).permute(0, 2, 1, 3, 4).contiguous()


@torch.no_grad()
def video_features(videos: np.ndarray, net: VideoFeatureNet, batch_size: int, device: torch.device) -> np.ndarray:
    """[N, T, H, W, 3] uint8 -> [N, D] float64 features, on the host; `net` runs on `device`."""
    out = []
    for start in range(0, len(videos), batch_size):
        batch = preprocess(videos[start : start + batch_size], net.input_size).to(device)
        out.append(net.features(batch).double().cpu().numpy())
    return np.concatenate(out)


def fvd(real: np.ndarray, generated: np.ndarray, net: VideoFeatureNet, batch_size: int, device: torch.device) -> float:
    """Fréchet distance of the feature Gaussians of two clip sets [N, T, H, W, 3] uint8."""
    real_features = video_features(real, net, batch_size, device)
    return frechet_distance(real_features, video_features(generated, net, batch_size, device))
