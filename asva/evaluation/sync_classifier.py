"""The project's small synchronization classifier (`eval.networks.sync_classifier.kind=asva_small`).

Not the papers' classifier (that is asva/evaluation/avsync_classifier.py, kind `avsyncd`): a small
network in its spirit, quick to train on the embedded benchmark, whose RelSync/AlignSync carry the
names `relsync_asva` / `relsync_embedded` (docs/metrics.md), never the reserved ones.

phi(a, v) is an unbounded score of how well audio segment a is synchronized with video segment v:
an audio encoder of 2D convolutions over the log-mel filterbank, a video encoder of R(2+1)D
convolutions (each 3D convolution factored into a 1x3x3 spatial and a 3x1x1 temporal one), and an
MLP over their concatenation. Unlike the papers' classifier, both encoders keep the time axis (one
feature per video frame), the MLP scores the concatenated audio and video features of every frame,
and phi is the mean over frames, so the same network scores a 1-s training window and a whole 2 s clip.

Training (Eq. 1 of asva-eccv2024.txt, after VGGSoundSync): for a clip's audio window a_i and the video
windows v_j of the same clip shifted by j = -D..D frame periods,

    P_Sync(a_i, v_i) = exp(phi(a_i, v_i) / tau) / sum_j exp(phi(a_i, v_j) / tau)        (Eq. 1)

is maximised (cross-entropy with the unshifted window as the target). Accuracy is how often the
unshifted window scores highest (chance 1 / (2D + 1)). The temperature tau is only used in training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from asva.data.audio import FRAME_SHIFT_MS


@dataclass
class SyncClassifierShape:
    """The network's widths; the defaults fit 32x32 frames on a CPU (the paper's uses 64..512)."""

    video_widths: list[int] = field(default_factory=lambda: [16, 32, 48])
    audio_widths: list[int] = field(default_factory=lambda: [16, 32, 48])
    head_dim: int = 64


class R2Plus1DBlock(nn.Module):
    """Residual block: 1x3x3 spatial conv (spatial stride), 3x1x1 temporal conv, both batch-normed."""

    def __init__(self, in_channels: int, out_channels: int, spatial_stride: int):
        super().__init__()
        self.spatial = nn.Conv3d(
            in_channels,
            out_channels,
            (1, 3, 3),
            stride=(1, spatial_stride, spatial_stride),
            padding=(0, 1, 1),
            bias=False,
        )
        self.spatial_norm = nn.BatchNorm3d(out_channels)
        self.temporal = nn.Conv3d(out_channels, out_channels, (3, 1, 1), padding=(1, 0, 0), bias=False)
        self.temporal_norm = nn.BatchNorm3d(out_channels)
        self.skip = None
        if in_channels != out_channels or spatial_stride != 1:
            self.skip = nn.Conv3d(in_channels, out_channels, 1, stride=(1, spatial_stride, spatial_stride), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.spatial_norm(self.spatial(x)))
        y = self.temporal_norm(self.temporal(y))
        return F.relu(y + (self.skip(x) if self.skip is not None else x))


class VideoR2Plus1DEncoder(nn.Module):
    """[B, 3, T, S, S] in [-1, 1] -> [B, C, T]: R(2+1)D blocks, spatial mean at the end."""

    def __init__(self, widths: list[int]):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(3, widths[0], (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(widths[0]),
            nn.ReLU(),
        )
        self.blocks = nn.Sequential(
            *[R2Plus1DBlock(widths[max(i - 1, 0)], width, 2 if i > 0 else 1) for i, width in enumerate(widths)]
        )
        self.out_channels = widths[-1]

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(video)).mean(dim=(3, 4))


class AudioConv2DEncoder(nn.Module):
    """[B, F, mel] filterbank -> [B, C, num_steps]: strided 2D convs, mel mean, pooled to the frames."""

    def __init__(self, widths: list[int]):
        super().__init__()
        layers: list[nn.Module] = []
        previous = 1
        for width in widths:
            layers += [nn.Conv2d(previous, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            previous = width
        self.net = nn.Sequential(*layers)
        self.out_channels = widths[-1]

    def forward(self, fbank: torch.Tensor, num_steps: int) -> torch.Tensor:
        features = self.net(fbank[:, None]).mean(dim=3)  # [B, C, F']
        return F.adaptive_avg_pool1d(features, num_steps)


class SyncClassifier(nn.Module):
    """phi(a, v): audio fbank [B, F, mel] and video [B, 3, T, S, S] in [-1, 1] -> [B] scores."""

    def __init__(self, shape: SyncClassifierShape | None = None):
        super().__init__()
        self.shape = shape or SyncClassifierShape()
        self.audio_encoder = AudioConv2DEncoder(self.shape.audio_widths)
        self.video_encoder = VideoR2Plus1DEncoder(self.shape.video_widths)
        channels = self.audio_encoder.out_channels + self.video_encoder.out_channels
        self.head = nn.Sequential(
            nn.Conv1d(channels, self.shape.head_dim, 1), nn.ReLU(), nn.Conv1d(self.shape.head_dim, 1, 1)
        )

    def forward(self, fbank: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        visual = self.video_encoder(video)
        audio = self.audio_encoder(fbank, visual.shape[-1])
        return self.head(torch.cat([audio, visual], dim=1))[:, 0].mean(dim=1)

    def score_inputs(self, fbank: torch.Tensor, frames: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The project's filterbanks and uint8 frames -> this network's (fbank, video)."""
        return fbank, video_tensor(frames)


def video_tensor(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """[B, T, H, W, 3] uint8 -> [B, 3, T, H, W] in [-1, 1]."""
    frames = torch.as_tensor(frames)
    return frames.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


@torch.no_grad()
def sync_scores(
    classifier: nn.Module, fbank: torch.Tensor, frames: np.ndarray | torch.Tensor, batch_size: int = 32
) -> np.ndarray:
    """phi(a_n, v_n) for every clip n: fbank [N, F, mel], frames [N, T, H, W, 3] uint8 -> [N].

    `classifier` is either kind (this small one or AVSyncDClassifier): its `score_inputs` turns the
    project's filterbanks and frames into its own inputs, on the device its weights are on."""
    classifier.eval()
    device = next(classifier.parameters()).device
    scores = []
    for start in range(0, len(fbank), batch_size):
        audio, video = classifier.score_inputs(fbank[start : start + batch_size], frames[start : start + batch_size])
        scores.append(classifier(audio.to(device), video.to(device)).cpu())
    return torch.cat(scores).double().numpy()


@dataclass
class ShiftWindows:
    """Audio window a_i and video windows v_j, j = -D..D frame periods, cut from one clip."""

    window_frames: int
    max_shift: int  # D
    fps: int

    @classmethod
    def from_seconds(cls, window_seconds: float, max_shift_seconds: float, fps: int, num_frames: int) -> ShiftWindows:
        windows = cls(max(1, round(window_seconds * fps)), max(1, round(max_shift_seconds * fps)), fps)
        if windows.window_frames + 2 * windows.max_shift > num_frames:
            raise ValueError(
                f"a {window_seconds:g} s window shifted by up to {max_shift_seconds:g} s does not fit in {num_frames} frames at {fps} FPS"
            )
        return windows

    def fbank_slice(self, start_frame: int) -> slice:
        per_frame = 1000.0 / FRAME_SHIFT_MS / self.fps  # filterbank frames per video frame
        first = int(round(start_frame * per_frame))
        return slice(first, first + int(round(self.window_frames * per_frame)))

    def candidates(
        self, fbank: torch.Tensor, frames: torch.Tensor, audio_starts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For clips [B] and their audio window starts: audio [B, F_w, mel], videos [B, 2D+1, 3, W, H, W]."""
        audio, videos = [], []
        for clip, start in enumerate(audio_starts.tolist()):
            audio.append(fbank[clip, self.fbank_slice(start)])
            shifted = [
                frames[clip, start + shift : start + shift + self.window_frames]
                for shift in range(-self.max_shift, self.max_shift + 1)
            ]
            videos.append(video_tensor(torch.stack(shifted)))
        length = min(a.shape[0] for a in audio)
        return torch.stack([a[:length] for a in audio]), torch.stack(videos)

    def random_starts(self, count: int, num_frames: int, generator: torch.Generator) -> torch.Tensor:
        low, high = self.max_shift, num_frames - self.window_frames - self.max_shift
        return torch.randint(low, high + 1, (count,), generator=generator)


def shifted_logits(classifier: SyncClassifier, audio: torch.Tensor, videos: torch.Tensor) -> torch.Tensor:
    """phi(a_i, v_j) for all candidates: audio [B, F_w, mel], videos [B, K, 3, W, H, W] -> [B, K]."""
    batch, count = videos.shape[:2]
    repeated = audio[:, None].expand(batch, count, *audio.shape[1:]).reshape(batch * count, *audio.shape[1:])
    return classifier(repeated, videos.reshape(batch * count, *videos.shape[2:])).reshape(batch, count)


def contrastive_loss(logits: torch.Tensor, max_shift: int, temperature: float) -> torch.Tensor:
    """-log P_Sync (Eq. 1): cross-entropy over the shifted candidates, the unshifted one the target."""
    target = torch.full((len(logits),), max_shift, dtype=torch.long)
    return F.cross_entropy(logits / temperature, target)


@torch.no_grad()
def shift_accuracy(
    classifier: SyncClassifier, fbank: torch.Tensor, frames: torch.Tensor, windows: ShiftWindows, batch_size: int = 16
) -> float:
    """Share of (clip, audio window start) pairs whose unshifted video window scores highest."""
    classifier.eval()
    starts = range(windows.max_shift, frames.shape[1] - windows.window_frames - windows.max_shift + 1)
    correct = total = 0
    for start in starts:
        for first in range(0, len(fbank), batch_size):
            index = slice(first, first + batch_size)
            audio, videos = windows.candidates(fbank[index], frames[index], torch.full((len(fbank[index]),), start))
            logits = shifted_logits(classifier, audio, videos)
            correct += int((logits.argmax(dim=1) == windows.max_shift).sum())
            total += len(logits)
    return correct / total


def checkpoint_payload(classifier: SyncClassifier, windows: ShiftWindows, dataset: str, extra: dict) -> dict:
    """What a saved classifier holds: weights, shape, the windows it was trained on, its dataset."""
    return {
        "weights": classifier.state_dict(),
        "shape": asdict(classifier.shape),
        "windows": asdict(windows),
        "dataset": dataset,
        **extra,
    }


def load_sync_classifier(path: str | Path) -> tuple[SyncClassifier, dict]:
    """A classifier saved by sweeps/train_sync_classifier.py; returns it (eval mode) and its payload."""
    from asva.errors import DataError
    from asva.files import load_torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"eval.networks.sync_classifier.checkpoint: {path} does not exist")
    payload = load_torch(path)
    if payload.get("kind") == "avsyncd":
        raise DataError(f"eval.networks.sync_classifier.checkpoint: {path} holds the papers' classifier (kind=avsyncd)")
    if "shape" not in payload or "weights" not in payload:
        raise DataError(f"eval.networks.sync_classifier.checkpoint: {path} is not a synchronization classifier")
    classifier = SyncClassifier(SyncClassifierShape(**payload["shape"]))
    classifier.load_state_dict(payload["weights"])
    return classifier.eval(), payload
