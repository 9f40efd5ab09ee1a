"""Evaluation on the test split of the embedded benchmark, with its reference rows.

Each test clip's first frame and audio condition a generated clip. Metrics (synthetic names):
- event_sync: onset F1 x100 of the generated clips (asva/evaluation/event_sync.py);
- event_sync_null_audio: the same model sampled with the null audio (is audio used at all?);
- fd_pixel_synth: Fréchet distance of pixel features to the real clips (the FVD counterpart);
- reference rows, `<metric>_ref_groundtruth` (the real clips) and `<metric>_ref_static` (first
  frame repeated): the bounds that show what the metric can tell apart;
- with eval.paper_metrics (default): FVD, IA, IT, RelSync, AlignSync and their reference rows
  (asva/evaluation/paper_metrics.py), under `_embedded` names unless the papers' networks are
  configured (asva/evaluation/networks.py). Their stand-in networks train once on the training
  split and are cached.
- with eval.openclass (default) on the synthetic dataset: the same metrics of held-out clips of the
  pool-only classes, as `<metric>_openclass` (asva/data/openclass.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from asva.progress import progress

from asva.config.schema import ExperimentConfig
from asva.data import sources
from asva.data.dataset import ClipSet, load_split
from asva.data.openclass import openclass_metrics
from asva.evaluation.event_sync import event_sync
from asva.evaluation.frechet import frechet_distance, pixel_video_features
from asva.evaluation.networks import evaluation_networks
from asva.evaluation.paper_metrics import paper_scores, per_class_rows
from asva.evaluation.sampling import sample
from asva.models.asva_model import ASVAModel


@dataclass
class Evaluation:
    metrics: dict[str, float]
    generated: np.ndarray  # [N, T, H, W, 3] uint8, audio-conditioned
    video_ids: list[str]
    per_class: list[dict[str, object]] = field(default_factory=list)  # per class and metric (paper metrics)


def static_videos(frames: np.ndarray) -> np.ndarray:
    return np.repeat(frames[:, :1], frames.shape[1], axis=1)


def evaluate(model: ASVAModel, test: ClipSet, cfg: ExperimentConfig, seed: int, train: ClipSet | None = None) -> Evaluation:
    """Sample the test clips and score them; `train` (loaded when not given) trains the metric stand-ins."""
    if cfg.eval.max_test_clips is not None:
        test = test.subset(list(range(min(len(test), cfg.eval.max_test_clips))))
    features = model.encode_audio(test.fbank, test.audio, cfg.data.sample_rate)
    captions = [label.replace("_", " ") for label in test.labels]
    outputs: dict[bool, list[torch.Tensor]] = {True: [], False: []}
    batches = range(0, len(test), cfg.eval.batch_size)
    for start in progress(batches, desc="sampling test clips (with and without audio)", unit="batch"):
        index = torch.arange(start, min(start + cfg.eval.batch_size, len(test)))
        for use_audio in (True, False):
            # The same starting noise for both, so the difference is the audio alone.
            generator = torch.Generator().manual_seed(seed * 1_000_003 + start)
            outputs[use_audio].append(
                sample(model, test.frames[index], features.select(index), [captions[i] for i in index], cfg.diffusion, generator, use_audio)
            )
    generated = torch.cat(outputs[True]).numpy()
    without_audio = torch.cat(outputs[False]).numpy()
    real = test.frames.numpy()
    static = static_videos(real)
    fps, tolerance = cfg.data.fps, cfg.eval.sync_tolerance_frames
    real_features = pixel_video_features(real)
    metrics = {
        "event_sync": event_sync(generated, test.event_times, fps, tolerance),
        "event_sync_null_audio": event_sync(without_audio, test.event_times, fps, tolerance),
        "event_sync_ref_groundtruth": event_sync(real, test.event_times, fps, tolerance),
        "event_sync_ref_static": event_sync(static, test.event_times, fps, tolerance),
        "fd_pixel_synth": frechet_distance(real_features, pixel_video_features(generated)),
        "fd_pixel_synth_null_audio": frechet_distance(real_features, pixel_video_features(without_audio)),
        "fd_pixel_synth_ref_static": frechet_distance(real_features, pixel_video_features(static)),
        "num_test_clips": float(len(test)),
    }
    per_class: list[dict[str, object]] = []
    nets = None
    if cfg.eval.paper_metrics:
        if train is None:
            cache_dir = Path(cfg.paths.cache_dir)
            train = load_split(sources.benchmark_root(cfg.data, cache_dir), "train", cfg.data, cache_dir)
        nets = evaluation_networks(cfg, train, Path(cfg.paths.cache_dir))
        scores = paper_scores(nets, real, test.fbank, captions, generated, fps)
        metrics.update(scores.metrics)
        per_class = per_class_rows(test.labels, scores.per_clip)
    metrics.update(openclass_metrics(model, cfg, seed, nets))  # {} unless eval.openclass on synthetic
    return Evaluation(metrics=metrics, generated=generated, video_ids=test.video_ids, per_class=per_class)
