"""IT with the paper's CLIP: OpenCLIP ViT-H-14 (the same architecture as the generator's text and image
encoders, asva/models/paper_model.py), loaded from a checkpoint path, never downloaded.

IT needs CLIP's joint embedding space, so this uses the whole model's `encode_text` / `encode_image`
(final layer norm and projections), not the generator's penultimate-token encoders (`OpenCLIPText`,
`OpenCLIPImage`), which stop before the projections. Frames are preprocessed as OpenCLIP's eval
transform: bicubic resize of the short side to the model's image size, centre crop, CLIP mean/std.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from asva.models.paper_model import OPEN_CLIP_ARCH, OpenCLIPImage


def load_open_clip(checkpoint: str | Path, arch: str = OPEN_CLIP_ARCH) -> nn.Module:
    """An OpenCLIP model of `arch` with the weights in `checkpoint` (e.g. laion2b_s32b_b79k's
    open_clip_pytorch_model.bin), strictly loaded; a clear error when the file is missing."""
    import open_clip

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(
            f"eval.networks.clip_checkpoint={str(checkpoint)!r} does not exist: IT with the paper's CLIP needs the "
            f"OpenCLIP {arch} weights (open_clip_pytorch_model.bin of laion2b_s32b_b79k) at that path; they are never downloaded"
        )
    model = open_clip.create_model(arch, pretrained=None, device="cpu")
    open_clip.load_checkpoint(model, str(path), strict=True)
    return model.eval()


class OpenCLIPEmbedder:
    """A TextVisionEmbedder (asva/evaluation/embedders.py) over an OpenCLIP model: unit-norm embeddings."""

    def __init__(self, model: nn.Module, arch: str = OPEN_CLIP_ARCH):
        import open_clip

        self.model = model.eval()
        self.tokenizer = open_clip.get_tokenizer(arch)
        size = model.visual.image_size
        self.image_size = size if isinstance(size, tuple) else (size, size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device) -> OpenCLIPEmbedder:
        self.model.to(device)
        return self

    @torch.no_grad()
    def embed_text(self, captions: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(captions)).to(self.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1).cpu()

    def preprocess(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """[N, H, W, 3] uint8 -> [N, 3, S, S] normalised as OpenCLIP's eval transform."""
        x = torch.as_tensor(frames).permute(0, 3, 1, 2).float() / 255.0
        height, width = x.shape[-2:]
        scale = max(self.image_size[0] / height, self.image_size[1] / width)
        resized = (max(self.image_size[0], round(height * scale)), max(self.image_size[1], round(width * scale)))
        x = F.interpolate(x, size=resized, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        top, left = (resized[0] - self.image_size[0]) // 2, (resized[1] - self.image_size[1]) // 2
        x = x[..., top : top + self.image_size[0], left : left + self.image_size[1]]
        mean = torch.tensor(OpenCLIPImage.mean, device=x.device)[:, None, None]
        std = torch.tensor(OpenCLIPImage.std, device=x.device)[:, None, None]
        return (x - mean) / std

    @torch.no_grad()
    def embed_vision(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        images = self.preprocess(frames).to(self.device)
        return F.normalize(self.model.encode_image(images).float(), dim=-1).cpu()
