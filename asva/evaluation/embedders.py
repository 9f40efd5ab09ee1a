"""Joint embedding spaces for IA and IT, and the tiny CLIP-like stand-ins of the embedded default.

IA and IT compare a clip's frames with its audio (ImageBind) and with its caption (CLIP) in a shared
embedding space. The metrics only need two small interfaces, so the real networks plug in from
paths and the embedded default uses `TinyCLIP`: three towers (frames, filterbank, caption words)
trained here, contrastively, on the benchmark's training split (audio <-> a frame of the same clip,
InfoNCE both ways; frame -> its caption among the class captions). A single vision tower serves both
spaces, as ImageBind's vision trunk is CLIP's.

The similarities run the embedders on their device (the generator's, `EvalNetworks.to`), a batch of
`eval.batch_size` clips at a time, and take the embeddings back to the host.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from asva.models.conditioning import HashedTextEncoder


class AudioVisionEmbedder(Protocol):
    """ImageBind-like: unit-norm embeddings of audio and of single frames in one space (inputs on
    the embedder's device)."""

    def embed_audio(self, fbank: torch.Tensor) -> torch.Tensor: ...  # [N, F, mel] -> [N, D]

    def embed_vision(self, frames: torch.Tensor) -> torch.Tensor: ...  # [N, H, W, 3] uint8 -> [N, D]

    def to(self, device: torch.device) -> AudioVisionEmbedder: ...


class TextVisionEmbedder(Protocol):
    """CLIP-like: unit-norm embeddings of captions and of single frames in one space."""

    def embed_text(self, captions: list[str]) -> torch.Tensor: ...  # -> [N, D]

    def embed_vision(self, frames: torch.Tensor) -> torch.Tensor: ...

    def to(self, device: torch.device) -> TextVisionEmbedder: ...


def image_tower(channels: int, width: int, dim: int) -> nn.Sequential:
    """[N, channels, H, W] -> [N, dim]: three stride-2 convolutions, averaged over the image, projected."""
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, dim),
    )


class TinyCLIP(nn.Module):
    """The embedded stand-in for ImageBind (audio, vision) and CLIP (text, vision)."""

    def __init__(self, dim: int = 64, width: int = 32):
        super().__init__()
        self.vision = image_tower(3, width, dim)  # RGB frames
        self.audio = image_tower(1, width, dim)  # a filterbank, time x mel, as a one-channel image
        self.words = HashedTextEncoder(dim)
        self.text = nn.Linear(dim, dim)
        self.log_scale = nn.Parameter(torch.tensor(float(np.log(10.0))))

    def embed_vision(self, frames: torch.Tensor) -> torch.Tensor:
        images = torch.as_tensor(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return F.normalize(self.vision(images), dim=-1)

    def embed_audio(self, fbank: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.audio(fbank[:, None]), dim=-1)

    def embed_text(self, captions: list[str]) -> torch.Tensor:
        tokens = self.words(captions)  # [N, words, D], padding zero
        words = [max(1, len(HashedTextEncoder.word_ids(c))) for c in captions]
        count = torch.tensor(words, dtype=torch.float32, device=tokens.device)
        return F.normalize(self.text(tokens.sum(dim=1) / count[:, None]), dim=-1)

    def contrastive_loss(
        self, fbank: torch.Tensor, frames: torch.Tensor, labels: torch.Tensor, class_captions: list[str]
    ) -> torch.Tensor:
        """InfoNCE audio <-> frame of the same clip (both ways) + frame -> caption of its class."""
        scale = self.log_scale.exp().clamp(max=100.0)
        audio, vision = self.embed_audio(fbank), self.embed_vision(frames)
        logits = scale * audio @ vision.T
        # Clips of the same class are positives too: their sounds and pictures are alike by design.
        same = (labels[:, None] == labels[None, :]).float()
        soft = same / same.sum(dim=1, keepdim=True)
        audio_loss = (F.cross_entropy(logits, soft) + F.cross_entropy(logits.T, soft)) / 2
        text_logits = scale * vision @ self.embed_text(class_captions).T
        return audio_loss + F.cross_entropy(text_logits, labels)


@torch.no_grad()
def frame_embeddings(
    embedder: AudioVisionEmbedder | TextVisionEmbedder,
    frames: np.ndarray | torch.Tensor,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """[N, T, H, W, 3] uint8 -> [N, T, D] unit-norm embeddings of every frame, on the host; the
    embedder runs on `device`, the frames of `batch_size` clips at a time."""
    frames = torch.as_tensor(frames)
    out = []
    for start in range(0, len(frames), batch_size):
        clips = frames[start : start + batch_size].to(device)
        flat = clips.reshape(-1, *clips.shape[2:])
        out.append(embedder.embed_vision(flat).float().cpu().reshape(len(clips), clips.shape[1], -1))
    return torch.cat(out)


@torch.no_grad()
def audio_frame_similarity(
    embedder: AudioVisionEmbedder,
    fbank: torch.Tensor,
    frames: np.ndarray | torch.Tensor,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """Cosine similarity of each clip's audio with each of its frames: [N, T] in [-1, 1]."""
    starts = range(0, len(fbank), batch_size)
    audio = torch.cat([embedder.embed_audio(fbank[s : s + batch_size].to(device)).float().cpu() for s in starts])
    return torch.einsum("nd,ntd->nt", audio, frame_embeddings(embedder, frames, batch_size, device)).double().numpy()


@torch.no_grad()
def text_frame_similarity(
    embedder: TextVisionEmbedder,
    captions: list[str],
    frames: np.ndarray | torch.Tensor,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """Cosine similarity of each clip's caption with each of its frames: [N, T] in [-1, 1]."""
    starts = range(0, len(captions), batch_size)
    text = torch.cat([embedder.embed_text(captions[s : s + batch_size]).float().cpu() for s in starts])
    return torch.einsum("nd,ntd->nt", text, frame_embeddings(embedder, frames, batch_size, device)).double().numpy()
