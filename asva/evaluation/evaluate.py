"""Evaluation on the test split of the embedded benchmark, with its reference rows.

Each test clip's first frame and audio condition a generated clip. Metrics (synthetic names):
- event_sync: onset F1 x100 of the generated clips (asva/evaluation/event_sync.py);
- event_sync_null_audio: the same model sampled with the null audio (is audio used at all?);
- fd_pixel_synth: Fréchet distance of pixel features to the real clips (the FVD counterpart);
- reference rows, `<metric>_ref_groundtruth` (the real clips) and `<metric>_ref_static` (first
  frame repeated): the bounds that show what the metric can tell apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from asva.progress import progress

from asva.config.schema import ExperimentConfig
from asva.data.dataset import ClipSet
from asva.evaluation.event_sync import event_sync
from asva.evaluation.frechet import frechet_distance, pixel_video_features
from asva.evaluation.sampling import sample
from asva.models.asva_model import ASVAModel


@dataclass
class Evaluation:
    metrics: dict[str, float]
    generated: np.ndarray  # [N, T, H, W, 3] uint8, audio-conditioned
    video_ids: list[str]


def static_videos(frames: np.ndarray) -> np.ndarray:
    return np.repeat(frames[:, :1], frames.shape[1], axis=1)


def evaluate(model: ASVAModel, test: ClipSet, cfg: ExperimentConfig, seed: int) -> Evaluation:
    if cfg.eval.max_test_clips is not None:
        test = test.subset(list(range(min(len(test), cfg.eval.max_test_clips))))
    features = model.encode_audio(test.fbank)
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
    return Evaluation(metrics=metrics, generated=generated, video_ids=test.video_ids)
