"""The networks behind FVD, IA, IT, RelSync and AlignSync: loaded from paths, or stand-ins trained once.

With a path configured, the paper's network is loaded (StyleGAN-V's I3D TorchScript, ImageBind from
`imagebind_huge.pth`, AVSyncD's released synchronization classifier with
`eval.networks.sync_classifier.kind=avsyncd`), and on a real dataset the metric carries its reserved
name; the project's small synchronization classifier trained on real data gives `relsync_asva` and
`alignsync_asva` (docs/metrics.md). Without a path, the embedded default trains a small
stand-in here, once per training split and configuration (cached under
`paths.cache_dir/eval_networks/`, keyed by the split's content like the other stand-ins), and the
metric carries the `_embedded` suffix. Every stand-in trains at the evaluation frame rate (6 FPS).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from asva.config.hashing import stable_hash
from asva.config.schema import ExperimentConfig, SyncClassifierConfig
from asva.data.audio import FBANK_MEAN, FBANK_STD
from asva.data.dataset import ClipSet
from asva.evaluation.avsync_classifier import load_avsyncd
from asva.evaluation.embedders import AudioVisionEmbedder, TextVisionEmbedder, TinyCLIP
from asva.evaluation.fvd import VideoFeatureNet, load_i3d, preprocess
from asva.evaluation.protocol import EVAL_FPS, at_eval_fps
from asva.evaluation.sync_classifier import (
    ShiftWindows,
    SyncClassifier,
    SyncClassifierShape,
    VideoR2Plus1DEncoder,
    checkpoint_payload,
    contrastive_loss,
    load_sync_classifier,
    shift_accuracy,
    shifted_logits,
)
from asva.files import build_once
from asva.tracking.store import EMBEDDED_SUFFIX, PROJECT_CLASSIFIER_SUFFIX
from asva.training.components import clipset_fingerprint
from asva.training.loop import LoopSpec, train_loop

log = logging.getLogger(__name__)

# Parts of the stand-ins' cache keys: bump one when the same settings would train another network.
VIDEO_NET_CACHE_VERSION = "v1"
TINY_CLIP_CACHE_VERSION = "v1"
SYNC_CLASSIFIER_CACHE_VERSION = "v1"


@dataclass
class EvalNetworks:
    video_features: VideoFeatureNet
    audio_vision: AudioVisionEmbedder
    text_vision: TextVisionEmbedder
    sync: nn.Module  # SyncClassifier (kind asva_small) or AVSyncDClassifier (kind avsyncd)
    # Which metrics are computed with the papers' own networks (and so carry the reserved names).
    paper_fvd: bool = False
    paper_ia: bool = False
    paper_it: bool = False
    # What RelSync/AlignSync's names end with (`sync_suffix`): "" only for the papers' classifier.
    sync_suffix: str = EMBEDDED_SUFFIX
    # FID of frames (eval.fid): pytorch-fid's InceptionV3 from eval.networks.fid_inception_checkpoint.
    fid_inception: nn.Module | None = None
    paper_fid: bool = False
    # Where the networks compute (`to`); their features come back to the host.
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def to(self, device: torch.device) -> EvalNetworks:
        """Every network on `device` (the generator's, so scoring uses the job's accelerator)."""
        for network in (self.video_features, self.audio_vision, self.text_vision, self.sync, self.fid_inception):
            if network is not None:
                network.to(device)
        self.device = device
        return self

    def name(self, metric: str) -> str:
        if metric == "relsync":
            return metric + self.sync_suffix
        if metric == "alignsync":  # P_Align needs IA's network too
            return metric + (self.sync_suffix if self.paper_ia else EMBEDDED_SUFFIX)
        paper = {"fvd": self.paper_fvd, "ia": self.paper_ia, "it": self.paper_it, "fid": self.paper_fid}[metric]
        return metric if paper else metric + EMBEDDED_SUFFIX


class TinyVideoClassifier(nn.Module):
    """The I3D-shaped stand-in: R(2+1)D blocks trained to classify clips; FVD uses its pooled features."""

    def __init__(self, num_classes: int, widths: list[int], input_size: int):
        super().__init__()
        self.encoder = VideoR2Plus1DEncoder(widths)
        self.classifier = nn.Linear(widths[-1], num_classes)
        self.input_size = input_size

    def pooled(self, videos: torch.Tensor) -> torch.Tensor:
        return self.encoder(videos).mean(dim=2)

    @torch.no_grad()
    def features(self, videos: torch.Tensor) -> torch.Tensor:
        self.eval()
        return self.pooled(videos)


class ImageBindEmbedder:
    """ImageBind's audio and vision trunks (asva/models/imagebind.py) behind AudioVisionEmbedder."""

    def __init__(self, audio, vision):
        self.audio, self.vision = audio, vision

    def to(self, device: torch.device) -> ImageBindEmbedder:
        self.audio.to(device)
        self.vision.to(device)
        return self

    @torch.no_grad()
    def embed_audio(self, fbank: torch.Tensor) -> torch.Tensor:
        # ClipSet filterbanks are normalised (asva/data/audio.py); ImageBind normalises raw ones itself.
        return self.audio.embed_audio(fbank * (2 * FBANK_STD) + FBANK_MEAN)

    @torch.no_grad()
    def embed_vision(self, frames: torch.Tensor) -> torch.Tensor:
        return self.vision.embed_vision(torch.as_tensor(frames))


def _video_net(train: ClipSet, frames: torch.Tensor, cfg: ExperimentConfig, cache_dir: Path) -> TinyVideoClassifier:
    spec = cfg.eval.networks
    widths, size = list(spec.video_net_widths), cfg.data.frame_size
    key = stable_hash(
        widths, spec.video_net_steps, spec.lr, clipset_fingerprint(train), EVAL_FPS, VIDEO_NET_CACHE_VERSION
    )
    labels = train.label_indices()

    def build() -> dict:
        torch.manual_seed(0)
        net = TinyVideoClassifier(len(train.classes), widths, size)
        videos = preprocess(frames.numpy(), size)
        losses = train_loop(
            net,
            list(net.parameters()),
            lambda idx, gen: F.cross_entropy(net.classifier(net.pooled(videos[idx])), labels[idx]),
            len(train),
            LoopSpec(lr=spec.lr, batch_size=spec.batch_size, steps=spec.video_net_steps),
            0,
            desc="I3D-shaped video classifier for fvd_embedded (trained once)",
        )
        return {"weights": net.state_dict(), "losses": losses}

    net = TinyVideoClassifier(len(train.classes), widths, size)
    net.load_state_dict(build_once(cache_dir / "eval_networks" / f"video-{key}.pt", build)["weights"])
    return net.eval()


def _tiny_clip(train: ClipSet, frames: torch.Tensor, cfg: ExperimentConfig, cache_dir: Path) -> TinyCLIP:
    spec = cfg.eval.networks
    key = stable_hash(spec.embedder_steps, spec.lr, clipset_fingerprint(train), EVAL_FPS, TINY_CLIP_CACHE_VERSION)
    labels = train.label_indices()
    captions = [c.replace("_", " ") for c in train.classes]

    def build() -> dict:
        torch.manual_seed(0)
        model = TinyCLIP()

        def loss(idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
            which = torch.randint(0, frames.shape[1], (len(idx),), generator=gen)
            return model.contrastive_loss(train.fbank[idx], frames[idx, which], labels[idx], captions)

        losses = train_loop(
            model,
            list(model.parameters()),
            loss,
            len(train),
            LoopSpec(lr=spec.lr, batch_size=2 * spec.batch_size, steps=spec.embedder_steps),
            0,
            desc="tiny CLIP-like embedders for ia_embedded / it_embedded (trained once)",
        )
        return {"weights": model.state_dict(), "losses": losses}

    model = TinyCLIP()
    model.load_state_dict(build_once(cache_dir / "eval_networks" / f"tinyclip-{key}.pt", build)["weights"])
    return model.eval()


def train_sync_classifier(
    train: ClipSet, test: ClipSet | None, sync: SyncClassifierConfig, fps: int, dataset: str, seed: int = 0
) -> dict:
    """Train the classifier contrastively over time-shifted windows (Eq. 1); returns its checkpoint payload."""
    frames = at_eval_fps(train.frames, fps)
    windows = ShiftWindows.from_seconds(sync.window_seconds, sync.max_shift_seconds, EVAL_FPS, frames.shape[1])
    torch.manual_seed(seed)
    shape = SyncClassifierShape(list(sync.video_widths), list(sync.audio_widths), sync.head_dim)
    classifier = SyncClassifier(shape)

    def loss(idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        audio, videos = windows.candidates(
            train.fbank[idx], frames[idx], windows.random_starts(len(idx), frames.shape[1], gen)
        )
        return contrastive_loss(shifted_logits(classifier, audio, videos), windows.max_shift, sync.temperature)

    losses = train_loop(
        classifier,
        list(classifier.parameters()),
        loss,
        len(train),
        LoopSpec(lr=sync.lr, batch_size=sync.batch_size, steps=sync.steps),
        seed,
        desc="synchronization classifier (contrastive over time shifts)",
    )
    extra: dict = {"losses": losses, "chance": 1.0 / (2 * windows.max_shift + 1)}
    if test is not None:
        extra["test_accuracy"] = shift_accuracy(classifier, test.fbank, at_eval_fps(test.frames, fps), windows)
    return checkpoint_payload(classifier, windows, dataset, extra)


def sync_suffix(real_data: bool, papers_classifier: bool, trained_on_real_data: bool) -> str:
    """The suffix of RelSync/AlignSync (docs/metrics.md): none, the reserved names, only for the papers'
    classifier on a real dataset; `_asva` for a classifier of this project trained on real data;
    `_embedded` on the synthetic benchmark or for a classifier trained on it."""
    if not (real_data and trained_on_real_data):
        return EMBEDDED_SUFFIX
    return "" if papers_classifier else PROJECT_CLASSIFIER_SUFFIX


def _sync(train: ClipSet, cfg: ExperimentConfig, cache_dir: Path) -> tuple[nn.Module, str]:
    """The classifier `eval.networks.sync_classifier.kind` selects, and the suffix of its metrics' names."""
    sync = cfg.eval.networks.sync_classifier
    real_data = cfg.data.name != "synthetic"
    if sync.kind == "avsyncd":
        loaded = load_avsyncd(sync.checkpoint)
        return loaded.classifier, sync_suffix(real_data, loaded.papers, loaded.dataset != "synthetic")
    if sync.checkpoint:
        classifier, payload = load_sync_classifier(sync.checkpoint)
        return classifier, sync_suffix(real_data, False, payload.get("dataset") != "synthetic")
    # The small classifier's own settings only: the stand-in's cache outlives the other kinds' settings.
    config = {k: v for k, v in asdict(sync).items() if k not in ("checkpoint", "kind", "avsyncd")}
    key = stable_hash(config, clipset_fingerprint(train), cfg.data.fps, SYNC_CLASSIFIER_CACHE_VERSION)
    payload = build_once(
        cache_dir / "eval_networks" / f"sync-{key}.pt",
        lambda: train_sync_classifier(train, None, sync, cfg.data.fps, cfg.data.name),
    )
    classifier = SyncClassifier(SyncClassifierShape(**payload["shape"]))
    classifier.load_state_dict(payload["weights"])
    return classifier.eval(), EMBEDDED_SUFFIX


def evaluation_networks(cfg: ExperimentConfig, train: ClipSet, cache_dir: Path) -> EvalNetworks:
    """The networks for the configured evaluation: from paths where given, else stand-ins (trained on
    the fixed clips of `train`, decoded into memory if it streams)."""
    spec = cfg.eval.networks
    real_data = cfg.data.name != "synthetic"
    # The networks from paths first, so that a missing file fails before any stand-in trains.
    clip = None
    if spec.clip_checkpoint:
        from asva.evaluation.clip_score import OpenCLIPEmbedder, load_open_clip

        clip = OpenCLIPEmbedder(load_open_clip(spec.clip_checkpoint, spec.clip_arch), spec.clip_arch)
    fid_inception = None
    if cfg.eval.fid:
        from asva.evaluation.fid import load_fid_inception

        fid_inception = load_fid_inception(spec.fid_inception_checkpoint)
    train = train.decoded(cfg.data.num_workers)
    frames = at_eval_fps(train.frames, cfg.data.fps)
    if spec.i3d_checkpoint:
        video_net, paper_fvd = load_i3d(spec.i3d_checkpoint), real_data
    else:
        video_net, paper_fvd = _video_net(train, frames, cfg, cache_dir), False
    tiny = _tiny_clip(train, frames, cfg, cache_dir)
    audio_vision, paper_ia = tiny, False
    if spec.imagebind_checkpoint:
        from asva.models.imagebind import load_imagebind_audio, load_imagebind_vision

        audio_vision = ImageBindEmbedder(
            load_imagebind_audio(spec.imagebind_checkpoint), load_imagebind_vision(spec.imagebind_checkpoint)
        )
        paper_ia = real_data
    text_vision, paper_it = (tiny, False) if clip is None else (clip, real_data)
    sync, suffix = _sync(train, cfg, cache_dir)
    return EvalNetworks(
        video_features=video_net,
        audio_vision=audio_vision,
        text_vision=text_vision,
        sync=sync,
        paper_fvd=paper_fvd,
        paper_ia=paper_ia,
        paper_it=paper_it,
        sync_suffix=suffix,
        fid_inception=fid_inception,
        paper_fid=fid_inception is not None and real_data,
    )
