"""Evaluation on the test split of the benchmark (the embedded one or a real one), with its reference rows.

Each test clip's first frame and audio condition a generated clip. Metrics (synthetic names):
- event_sync: onset F1 x100 of the generated clips (asva/evaluation/event_sync.py);
- event_sync_null_audio: the same model sampled with the null audio (is audio used at all?);
- fd_pixel_synth: Fréchet distance of pixel features to the real clips (the FVD counterpart);
- reference rows, `<metric>_ref_groundtruth` (the real clips) and `<metric>_ref_static` (first
  frame repeated): the bounds that show what the metric can tell apart;
- with eval.paper_metrics (default): FVD, IA, IT, RelSync, AlignSync and their reference rows
  (asva/evaluation/paper_metrics.py), under `_embedded` names unless the papers' networks are
  configured (asva/evaluation/networks.py). Their stand-in networks train once on the training
  split (its frames, sound and class labels, no event times) and are cached.
- with eval.openclass (default) on the synthetic dataset: the same metrics of held-out clips of the
  pool-only classes, as `<metric>_openclass` (asva/data/openclass.py).

A metric the clips cannot score is not computed, and one log line names it with the reason:
event_sync needs ground-truth event times (a manifest.csv: the synthetic benchmark has one, the real
datasets have none), the Fréchet distances need at least 2 clips, the open-class metrics need
open-class clips (synthetic only).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from asva.progress import progress

from asva.config.schema import ExperimentConfig
from asva.data import sources
from asva.data.dataset import ClipSet, load_split
from asva.data.openclass import openclass_metrics
from asva.evaluation.event_sync import event_sync, has_event_frames
from asva.evaluation.frechet import MIN_SAMPLES, TOO_FEW_CLIPS, frechet_distance, pixel_video_features
from asva.evaluation.networks import evaluation_networks
from asva.evaluation.paper_metrics import REFERENCES, paper_scores, per_class_rows
from asva.evaluation.sampling import sample
from asva.models.asva_model import ASVAModel

log = logging.getLogger(__name__)

NO_EVENT_TIMES = "no clip has ground-truth event times, which only a manifest.csv like the synthetic benchmark's gives"


@dataclass
class Evaluation:
    metrics: dict[str, float]
    generated: np.ndarray  # [N, T, H, W, 3] uint8, audio-conditioned
    video_ids: list[str]
    per_class: list[dict[str, object]] = field(default_factory=list)  # per class and metric (paper metrics)


def static_videos(frames: np.ndarray) -> np.ndarray:
    return np.repeat(frames[:, :1], frames.shape[1], axis=1)


def skeleton_metrics(clips: ClipSet, candidates: dict[str, np.ndarray], cfg: ExperimentConfig) -> tuple[dict[str, float], dict[str, str]]:
    """event_sync and fd_pixel_synth of each candidate set of videos against the real `clips`.

    `candidates` maps the suffix of the metric names to the videos scored ("" for the generated
    ones, "_null_audio", "_ref_groundtruth", ...); fd_pixel_synth of the ground truth itself is 0 and
    not logged. Returns the metrics and, for each one the clips cannot score, why.
    """
    real = clips.frames.numpy()
    fps, tolerance = cfg.data.fps, cfg.eval.sync_tolerance_frames
    events = has_event_frames(clips.event_times, fps, real.shape[1])
    enough_clips = len(real) >= MIN_SAMPLES
    real_features = pixel_video_features(real) if enough_clips else None
    metrics: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for suffix, videos in candidates.items():
        if events:
            metrics["event_sync" + suffix] = event_sync(videos, clips.event_times, fps, tolerance)
        else:
            skipped["event_sync" + suffix] = NO_EVENT_TIMES
        if suffix == REFERENCES["groundtruth"]:
            continue
        if enough_clips:
            metrics["fd_pixel_synth" + suffix] = frechet_distance(real_features, pixel_video_features(videos))
        else:
            skipped["fd_pixel_synth" + suffix] = TOO_FEW_CLIPS
    return metrics, skipped


def log_skipped(skipped: dict[str, str], what: str) -> None:
    """One log line naming every metric of `what` that was not computed, grouped by why."""
    if not skipped:
        return
    by_reason: dict[str, list[str]] = {}
    for name, reason in skipped.items():
        by_reason.setdefault(reason, []).append(name)
    log.info("%s: not computed: %s", what, "; ".join(f"{', '.join(names)} ({reason})" for reason, names in by_reason.items()))


def evaluate(model: ASVAModel, test: ClipSet, cfg: ExperimentConfig, seed: int, train: ClipSet | None = None) -> Evaluation:
    """Sample the test clips and score them; `train` (loaded when not given) trains the metric stand-ins."""
    if cfg.eval.max_test_clips is not None:
        test = test.subset(list(range(min(len(test), cfg.eval.max_test_clips))))
    features = model.encode_audio(test.fbank, test.audio, cfg.data.sample_rate)
    captions = [label.replace("_", " ") for label in test.labels]
    # The null-audio pass only feeds the `_null_audio` controls: sampled only when they are asked for.
    passes = (True, False) if cfg.eval.null_audio_control else (True,)
    outputs: dict[bool, list[torch.Tensor]] = {use_audio: [] for use_audio in passes}
    batches = range(0, len(test), cfg.eval.batch_size)
    what = "with and without audio" if cfg.eval.null_audio_control else "with audio"
    for start in progress(batches, desc=f"sampling test clips ({what})", unit="batch"):
        index = torch.arange(start, min(start + cfg.eval.batch_size, len(test)))
        for use_audio in passes:
            # The same starting noise for both, so the difference is the audio alone.
            generator = torch.Generator().manual_seed(seed * 1_000_003 + start)
            outputs[use_audio].append(
                sample(model, test.frames[index], features.select(index), [captions[i] for i in index], cfg.diffusion, generator, use_audio)
            )
    generated = torch.cat(outputs[True]).numpy()
    real = test.frames.numpy()
    candidates = {"": generated}
    if cfg.eval.null_audio_control:
        candidates["_null_audio"] = torch.cat(outputs[False]).numpy()
    candidates |= {REFERENCES["groundtruth"]: real, REFERENCES["static"]: static_videos(real)}
    metrics, skipped = skeleton_metrics(test, candidates, cfg)
    metrics["num_test_clips"] = float(len(test))
    per_class: list[dict[str, object]] = []
    nets = None
    if cfg.eval.paper_metrics:
        if train is None:
            cache_dir = Path(cfg.paths.cache_dir)
            train = load_split(sources.benchmark_root(cfg.data, cache_dir), "train", cfg.data, cache_dir)
        nets = evaluation_networks(cfg, train, Path(cfg.paths.cache_dir))
        scores = paper_scores(nets, real, test.fbank, captions, generated, cfg.data.fps)
        metrics.update(scores.metrics)
        skipped.update(scores.skipped)
        per_class = per_class_rows(test.labels, scores.per_clip)
    openclass, openclass_skipped = openclass_metrics(model, cfg, seed, nets)
    metrics.update(openclass)
    skipped.update(openclass_skipped)
    log_skipped(skipped, f"evaluation of {cfg.data.name}")
    return Evaluation(metrics=metrics, generated=generated, video_ids=test.video_ids, per_class=per_class)
