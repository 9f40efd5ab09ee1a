"""A tiny ASVA model, random clips and the stand-in metric networks, built in the test process (no job,
no cache, no files): shared by tests/test_device.py, tests/test_evaluation_sampling.py and
tests/test_metrics.py."""

from __future__ import annotations

import torch

from asva.config.schema import AudioEncoderConfig, ModelConfig
from asva.data.audio import fbank
from asva.data.dataset import ClipSet
from asva.models.asva_model import ASVAModel, ImageToVideoBase
from asva.models.audio_encoders import TinyAudioEncoder

RATE, FPS = 16000, 6  # 2-s clips: 12 frames, 198 fbank frames


def tiny_asva_model(cfg: ModelConfig | None = None, build_base=ImageToVideoBase) -> ASVAModel:
    """The default stand-in audio encoder's last layer on `build_base(cfg)` (the tiny base by default),
    fresh adapters, r = 1.5; the same weights at every call."""
    torch.manual_seed(0)
    encoder = AudioEncoderConfig()
    encoders = {
        "a": TinyAudioEncoder(encoder.kind, encoder.num_layers, encoder.dim, encoder.token_seconds, num_classes=2)
    }
    cfg = cfg or ModelConfig()
    model = ASVAModel(build_base(cfg), encoders, [("a", encoder.num_layers - 1)], 1.5, FPS, cfg, fbank_frames=198)
    model.reset_adapters(0)
    return model


def random_clips(count: int, size: int) -> ClipSet:
    """`count` 2-s clips of random frames and quiet noise, labelled drum, bell, drum, ..."""
    generator = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (count, 2 * FPS, size, size, 3), dtype=torch.uint8, generator=generator)
    audio = torch.randn(count, 2 * RATE, generator=generator) * 0.1
    labels = [("drum", "bell")[i % 2] for i in range(count)]
    return ClipSet(
        [f"clip{i}" for i in range(count)],
        labels,
        frames,
        audio,
        fbank(audio, RATE),
        [[] for _ in labels],
        ["bell", "drum"],
    )


def tiny_eval_networks(paper: bool = False):
    """The metric networks at test width; `paper` names their metrics as the papers' networks would."""
    from asva.evaluation.embedders import TinyCLIP
    from asva.evaluation.networks import EMBEDDED_SUFFIX, EvalNetworks, TinyVideoClassifier
    from asva.evaluation.sync_classifier import SyncClassifier, SyncClassifierShape

    torch.manual_seed(0)
    tiny = TinyCLIP(dim=16, width=8).eval()
    shape = SyncClassifierShape(video_widths=[8], audio_widths=[8], head_dim=8)
    return EvalNetworks(
        video_features=TinyVideoClassifier(4, [8], 32).eval(),
        audio_vision=tiny,
        text_vision=tiny,
        sync=SyncClassifier(shape).eval(),
        paper_fvd=paper,
        paper_ia=paper,
        paper_it=paper,
        sync_suffix="" if paper else EMBEDDED_SUFFIX,
    )
