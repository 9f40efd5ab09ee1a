"""The papers' synchronization classifier: AVSyncD's AVSync classifier (lzhangbj/ASVA, avsync/).

phi(a, v), the unbounded score behind RelSync (asva-eccv2024.txt Eq. 2) and AlignSync (Eq. 4), of a
2-s clip: 12 frames at 6 FPS and their audio. Built as the public code builds it:

- audio encoder (`AudioConv2DNet`): ImageBind's log-mel spectrogram [B, 1, 128 mel, 204 frames] ->
  a 7x7 stride-2 convolution, then four stages of two 3x3 convolutions (strides 2, 2, 2, 1; no
  residual), batch norm and ReLU after each -> mean over mel and time -> [B, widths[3]];
- video encoder (`VideoR2Plus1DNet`, the R(2+1)D-18 layout): CLIP-normalised frames [B, 3, 12, 224,
  224] -> a 3x7x7 convolution (spatial stride 2) and a 1x3x3 max-pool, then four stages of two
  residual blocks, each a 1x3x3 spatial and a 3x1x1 temporal convolution twice, the residual added
  before the last batch norm; stages 3-5 halve time and space -> mean over time and space;
- head (`FCHead`): an MLP 2C -> C -> C/2 -> 1 over the concatenated global embeddings.

Widths are 64-128-256-512 in the release; `widths` and `image_size` only exist so that a small copy
trains on a CPU in seconds (tests, the embedded benchmark).

The release is one diffusers folder per module (`.../checkpoint-40000/modules/{audio_encoder,
video_encoder, head}/`, each config.json + diffusion_pytorch_model.bin or .safetensors). The key
mapping (docs/metrics.md): `<folder>/diffusion_pytorch_model.*` key `K` -> `<folder>.K` here, the
module names being the release's; every weight must be there with its shape, nothing else may be
(BatchNorm `num_batches_tracked` counters, which hold no weights, may be absent).
tests/checkpoint_layouts/avsyncd_listing.py lists the release's keys from the official source.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from asva.config.schema import AVSyncDClassifierConfig
from asva.data.audio import FBANK_MEAN as PROJECT_FBANK_MEAN
from asva.data.audio import FBANK_STD as PROJECT_FBANK_STD
from asva.errors import DataError
from asva.models.imagebind import FBANK_MEAN, FBANK_STD, TARGET_FRAMES, VISION_MEAN, VISION_STD

RELEASE_WIDTHS = (64, 128, 256, 512)
RELEASE_IMAGE_SIZE = 224
# Release folder -> the official class its config.json names (and the submodule it loads into).
RELEASE_FOLDERS = {"audio_encoder": "AudioConv2DNet", "video_encoder": "VideoR2Plus1DNet", "head": "FCHead"}
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
CHECKPOINT_KEY = "eval.networks.sync_classifier.checkpoint"
KIND = "avsyncd"


def _conv_bn(conv: nn.Module, channels: int, norm: type[nn.Module]) -> list[nn.Module]:
    return [conv, norm(channels), nn.ReLU()]


class AudioStage(nn.Module):
    """Two 3x3 convolutions, each followed by batch norm and ReLU (the release's Basic2DBlock)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class AudioConv2DNet(nn.Module):
    """[B, 1, mel, frames] log-mel spectrogram -> [B, widths[3]] global audio embedding."""

    def __init__(self, widths: tuple[int, ...] = RELEASE_WIDTHS):
        super().__init__()
        self.conv1 = nn.Sequential(
            *_conv_bn(nn.Conv2d(1, widths[0], 7, stride=2, padding=3, bias=False), widths[0], nn.BatchNorm2d)
        )
        self.block1 = AudioStage(widths[0], widths[0], 2)
        self.block2 = AudioStage(widths[0], widths[1], 2)
        self.block3 = AudioStage(widths[1], widths[2], 2)
        self.block4 = AudioStage(widths[2], widths[3], 1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.block4(self.block3(self.block2(self.block1(self.conv1(mel)))))
        return x.mean(dim=(2, 3))


class R2Plus1DBlock(nn.Module):
    """(1x3x3 spatial, 3x1x1 temporal) twice; the residual (1x1x1 conv when the shape changes) is added
    before the last batch norm, as in the release's BasicR2P1DBlock."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.spt_conv1 = nn.Conv3d(
            in_channels, out_channels, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False
        )
        self.spt_bn1 = nn.BatchNorm3d(out_channels)
        self.tmp_conv1 = nn.Conv3d(
            out_channels, out_channels, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False
        )
        self.tmp_bn1 = nn.BatchNorm3d(out_channels)
        self.spt_conv2 = nn.Conv3d(out_channels, out_channels, (1, 3, 3), padding=(0, 1, 1), bias=False)
        self.spt_bn2 = nn.BatchNorm3d(out_channels)
        self.tmp_conv2 = nn.Conv3d(out_channels, out_channels, (3, 1, 1), padding=(1, 0, 0), bias=False)
        self.out_bn = nn.BatchNorm3d(out_channels)
        self.res_conv = None
        if in_channels != out_channels or stride != 1:
            self.res_conv = nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.tmp_bn1(self.tmp_conv1(F.relu(self.spt_bn1(self.spt_conv1(x))))))
        y = self.tmp_conv2(F.relu(self.spt_bn2(self.spt_conv2(y))))
        return F.relu(self.out_bn(y + (x if self.res_conv is None else self.res_conv(x))))


class VideoR2Plus1DNet(nn.Module):
    """[B, 3, T, S, S] CLIP-normalised frames -> [B, widths[3]] global video embedding."""

    def __init__(self, widths: tuple[int, ...] = RELEASE_WIDTHS):
        super().__init__()
        stem = nn.Conv3d(3, widths[0], (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False)
        self.conv1 = nn.Sequential(
            *_conv_bn(stem, widths[0], nn.BatchNorm3d), nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        )
        self.conv2x = nn.Sequential(R2Plus1DBlock(widths[0], widths[0]), R2Plus1DBlock(widths[0], widths[0]))
        self.conv3x = nn.Sequential(R2Plus1DBlock(widths[0], widths[1], 2), R2Plus1DBlock(widths[1], widths[1]))
        self.conv4x = nn.Sequential(R2Plus1DBlock(widths[1], widths[2], 2), R2Plus1DBlock(widths[2], widths[2]))
        self.conv5x = nn.Sequential(R2Plus1DBlock(widths[2], widths[3], 2), R2Plus1DBlock(widths[3], widths[3]))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = self.conv5x(self.conv4x(self.conv3x(self.conv2x(self.conv1(video)))))
        return x.mean(dim=(2, 3, 4))


class FCHead(nn.Module):
    """[.., 2C] concatenated audio and video embeddings -> [.., 1]. The release's dropout is 0; the
    Identity layers keep the release's indices (fc.0, fc.3, fc.6)."""

    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(2 * dim, dim),
            nn.Identity(),
            nn.ReLU(),
            nn.Linear(dim, dim // 2),
            nn.Identity(),
            nn.ReLU(),
            nn.Linear(dim // 2, 1),
        )

    def forward(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([audio, video], dim=-1))


def mel_spectrogram(fbank: torch.Tensor) -> torch.Tensor:
    """The project's filterbanks [B, F, 128] (asva.data.audio.fbank) -> the classifier's input
    [B, 1, 128, 204]: ImageBind's waveform2melspec, i.e. the raw filterbank zero-padded (or cut) to 204
    frames, normalised as (x - mean) / std, mel first."""
    raw = fbank.float() * (2 * PROJECT_FBANK_STD) + PROJECT_FBANK_MEAN
    raw = F.pad(raw, (0, 0, 0, max(0, TARGET_FRAMES - raw.shape[1])))[:, :TARGET_FRAMES]
    return ((raw - FBANK_MEAN) / FBANK_STD).transpose(1, 2)[:, None]


def video_input(frames: torch.Tensor | np.ndarray, image_size: int) -> torch.Tensor:
    """[B, T, H, W, 3] uint8 -> [B, 3, T, S, S]: resized to S x S (bicubic, antialiased) and
    CLIP-normalised, as the released evaluation's preprocess_videos does."""
    frames = torch.as_tensor(frames)
    batch, time, height, width, _ = frames.shape
    x = frames.reshape(batch * time, height, width, 3).permute(0, 3, 1, 2).float() / 255.0
    if (height, width) != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bicubic", align_corners=False, antialias=True)
    x = (x - torch.tensor(VISION_MEAN)[:, None, None]) / torch.tensor(VISION_STD)[:, None, None]
    return x.reshape(batch, time, 3, image_size, image_size).transpose(1, 2)


class AVSyncDClassifier(nn.Module):
    """phi(a, v): mel [B, 1, 128, 204] and video [B, 3, 12, S, S] -> [B] scores."""

    def __init__(self, widths: tuple[int, ...] = RELEASE_WIDTHS, image_size: int = RELEASE_IMAGE_SIZE):
        super().__init__()
        self.widths, self.image_size = tuple(widths), image_size
        self.audio_encoder = AudioConv2DNet(self.widths)
        self.video_encoder = VideoR2Plus1DNet(self.widths)
        self.head = FCHead(self.widths[-1])

    def forward(self, mel: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        return self.head(self.audio_encoder(mel), self.video_encoder(video))[:, 0]

    def pair_scores(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        """phi of every audio with every video of the same example: [B, P, C], [B, Q, C] -> [B, P, Q]."""
        pairs = audio.shape[1], video.shape[1]
        audio = audio[:, :, None].expand(-1, -1, pairs[1], -1)
        video = video[:, None].expand(-1, pairs[0], -1, -1)
        return self.head(audio, video)[..., 0]

    def score_inputs(self, fbank: torch.Tensor, frames: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The project's filterbanks and uint8 frames at 6 FPS -> this network's (mel, video)."""
        return mel_spectrogram(fbank), video_input(frames, self.image_size)


@dataclass
class LoadedClassifier:
    classifier: AVSyncDClassifier
    dataset: str  # what it was trained on ("VGGSS" for the release)
    papers: bool  # the papers' classifier: the release, or the papers' recipe (all defaults) on real data


def _read_weights(folder: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    for name in WEIGHT_FILES:
        path = folder / name
        if path.is_file():
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                return path, load_file(path)
            return path, torch.load(path, map_location="cpu", weights_only=True)
    raise DataError(f"{CHECKPOINT_KEY}: {folder} holds neither {' nor '.join(WEIGHT_FILES)}")


def read_release(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Path]]:
    """The release folder (`.../modules` or the checkpoint folder above it) -> (state with this module's
    keys, key -> the file it came from). Each folder's config.json must name the release's class."""
    root = Path(path).expanduser()
    folder = root / "modules" if (root / "modules").is_dir() else root
    state: dict[str, torch.Tensor] = {}
    sources: dict[str, Path] = {}
    for part, class_name in RELEASE_FOLDERS.items():
        config_path = folder / part / "config.json"
        if not config_path.is_file():
            raise DataError(
                f"{CHECKPOINT_KEY}: {config_path} missing (expected the release's modules/ folder holding "
                f"{', '.join(RELEASE_FOLDERS)})"
            )
        config = json.loads(config_path.read_text())
        if config.get("_class_name") != class_name:
            raise DataError(
                f"{CHECKPOINT_KEY}: {config_path} names {config.get('_class_name')!r}, expected {class_name!r}"
            )
        if part == "head" and config.get("out_dim", 1) != 1:
            raise DataError(
                f"{CHECKPOINT_KEY}: {config_path} has out_dim {config['out_dim']}, the classifier scores with 1"
            )
        weights_path, weights = _read_weights(folder / part)
        for key, value in weights.items():
            state[f"{part}.{key}"] = value
            sources[f"{part}.{key}"] = weights_path
    return state, sources


def release_widths(state: dict[str, torch.Tensor]) -> tuple[int, ...]:
    """The four stage widths, read from the audio encoder's stage convolutions."""
    names = ("conv1.0", "block2.conv1", "block3.conv1", "block4.conv1")
    missing = [f"audio_encoder.{n}.weight" for n in names if f"audio_encoder.{n}.weight" not in state]
    if missing:
        raise DataError(f"{CHECKPOINT_KEY}: the audio encoder's weights lack {', '.join(missing)}")
    return tuple(int(state[f"audio_encoder.{n}.weight"].shape[0]) for n in names)


def load_strictly(
    classifier: AVSyncDClassifier, state: dict[str, torch.Tensor], origin: str, sources: dict[str, Path] | None = None
) -> None:
    """Every weight of `classifier` from `state` with its shape, nothing else; DataError naming the key
    (and the file it came from) otherwise. Missing `num_batches_tracked` counters start at 0."""
    expected = classifier.state_dict()
    where = (lambda key: f"{key} ({sources[key]})") if sources else (lambda key: key)
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [where(k) for k in state if k not in expected]
    wrong = [
        f"{where(k)} {list(state[k].shape)} != {list(expected[k].shape)}"
        for k in state
        if k in expected and state[k].shape != expected[k].shape
    ]
    problems = [
        f"{label}: {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
        if keys
    ]
    if problems:
        raise DataError(f"{CHECKPOINT_KEY}: {origin} does not fit the AVSyncD classifier ({'; '.join(problems)})")
    filled = {k: v for k, v in expected.items() if k not in state}  # the absent counters
    classifier.load_state_dict(
        {**filled, **{k: v.float() if v.is_floating_point() else v for k, v in state.items()}}, strict=True
    )


def paper_recipe(recipe: dict) -> bool:
    """Whether a training recipe is the papers' (every AVSyncDClassifierConfig default)."""
    return recipe == asdict(AVSyncDClassifierConfig())


def checkpoint_payload(
    classifier: AVSyncDClassifier, recipe: AVSyncDClassifierConfig, dataset: str, extra: dict
) -> dict:
    """What sweeps/train_sync_classifier.py classifier.kind=avsyncd saves: the weights under the same
    keys as the release's mapping, the recipe and the dataset it was trained on."""
    return {"kind": KIND, "weights": classifier.state_dict(), "recipe": asdict(recipe), "dataset": dataset, **extra}


def load_avsyncd(path: str | Path) -> LoadedClassifier:
    """The release folder, or a file saved by sweeps/train_sync_classifier.py classifier.kind=avsyncd."""
    from asva.files import load_torch

    path = Path(path).expanduser()
    if path.is_dir():
        state, sources = read_release(path)
        widths = release_widths(state)
        classifier = AVSyncDClassifier(widths, RELEASE_IMAGE_SIZE)
        load_strictly(classifier, state, str(path), sources)
        return LoadedClassifier(classifier.eval(), "VGGSS", widths == RELEASE_WIDTHS)
    if not path.is_file():
        raise DataError(f"{CHECKPOINT_KEY}: {path} does not exist")
    payload = load_torch(path)
    if payload.get("kind") != KIND:
        raise DataError(
            f"{CHECKPOINT_KEY}: {path} is not an AVSyncD classifier (a small classifier needs kind=asva_small)"
        )
    recipe = payload["recipe"]
    classifier = AVSyncDClassifier(tuple(recipe["widths"]), recipe["image_size"])
    load_strictly(classifier, payload["weights"], str(path))
    dataset = payload["dataset"]
    return LoadedClassifier(classifier.eval(), dataset, dataset != "synthetic" and paper_recipe(recipe))
