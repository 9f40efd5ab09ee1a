"""The one scorer of every evaluation: the metrics of generated clips against their real clips.

Jobs (asva/evaluation/evaluate.py), `sweeps/evaluate.py` (asva/evaluation/standalone.py) and the
open-class clips are all scored by `score`. Metric names (asva/tracking/store.py for the suffixes):
- event_sync: onset F1 x100 of the generated clips (asva/evaluation/event_sync.py);
- fd_pixel_synth: Fréchet distance of pixel features to the real clips (the FVD counterpart);
- `<metric>_null_audio`: the same model sampled with the null audio (is audio used at all?);
- reference rows, `<metric>_ref_groundtruth` (the real clips) and `<metric>_ref_static` (first
  frame repeated): the bounds that show what the metric can tell apart;
- with the paper-metric networks: FVD, IA, IT, RelSync, AlignSync and their reference rows
  (asva/evaluation/paper_metrics.py), under `_embedded` names unless the papers' networks are
  configured (asva/evaluation/networks.py);
- `<metric>_openclass`: the same metrics of held-out clips of the pool-only classes (no reference
  rows, no null-audio control).

A metric the clips cannot score is not computed, and `log_skipped` names it with the reason in one
line: event_sync needs ground-truth event times (a manifest.csv: the synthetic benchmark has one,
the real datasets have none), the Fréchet distances need at least 2 clips.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from asva.config.schema import ExperimentConfig
from asva.data.dataset import ClipSet
from asva.evaluation.event_sync import event_sync, has_event_frames
from asva.evaluation.frechet import MIN_SAMPLES, TOO_FEW_CLIPS, frechet_distance, pixel_video_features
from asva.evaluation.networks import EvalNetworks
from asva.evaluation.paper_metrics import paper_scores, per_class_rows, static_like
from asva.tracking.store import GROUNDTRUTH_SUFFIX, NULL_AUDIO_SUFFIX, STATIC_SUFFIX

log = logging.getLogger(__name__)

NO_EVENT_TIMES = "no clip has ground-truth event times, which only a manifest.csv like the synthetic benchmark's gives"
REFERENCE_ROWS = (GROUNDTRUTH_SUFFIX, STATIC_SUFFIX)


@dataclass
class Scores:
    metrics: dict[str, float]
    skipped: dict[str, str] = field(default_factory=dict)  # metric name -> why it was not computed
    per_class: list[dict[str, object]] = field(default_factory=list)  # per class and paper metric


def skeleton_metrics(
    clips: ClipSet, candidates: dict[str, np.ndarray], cfg: ExperimentConfig
) -> tuple[dict[str, float], dict[str, str]]:
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
        if suffix == GROUNDTRUTH_SUFFIX:
            continue
        if enough_clips:
            metrics["fd_pixel_synth" + suffix] = frechet_distance(real_features, pixel_video_features(videos))
        else:
            skipped["fd_pixel_synth" + suffix] = TOO_FEW_CLIPS
    return metrics, skipped


def score(
    cfg: ExperimentConfig,
    clips: ClipSet,
    generated: np.ndarray,
    nets: EvalNetworks | None,
    count_name: str,
    suffix: str = "",
    null_audio: np.ndarray | None = None,
    skeleton_references: Sequence[str] = REFERENCE_ROWS,
) -> Scores:
    """Every metric of `generated` (the clips of `clips`, animated) with `suffix` on its name.

    `count_name` names the number of clips scored; `null_audio` (the same clips sampled without
    audio) adds the null-audio controls of event_sync and fd_pixel_synth; `nets` (None: none)
    adds the paper metrics and the per-class table. The reference rows come with suffix "" only:
    the paper metrics' both, event_sync's and fd_pixel_synth's those in `skeleton_references`.
    """
    real = clips.frames.numpy()
    candidates = {suffix: generated}
    if null_audio is not None:
        candidates[suffix + NULL_AUDIO_SUFFIX] = null_audio
    if not suffix:
        rows = {GROUNDTRUTH_SUFFIX: real, STATIC_SUFFIX: static_like(real)}
        candidates |= {row: rows[row] for row in skeleton_references}
    metrics, skipped = skeleton_metrics(clips, candidates, cfg)
    metrics[count_name] = float(len(clips))
    per_class: list[dict[str, object]] = []
    if nets is not None:
        captions = [label.replace("_", " ") for label in clips.labels]
        scores = paper_scores(
            nets, real, clips.fbank, captions, generated, cfg.data.fps, cfg.eval.batch_size, suffix=suffix
        )
        metrics.update(scores.metrics)
        skipped.update(scores.skipped)
        per_class = per_class_rows(clips.labels, scores.per_clip)
    return Scores({name: float(value) for name, value in metrics.items()}, skipped, per_class)


def log_skipped(skipped: dict[str, str], what: str) -> None:
    """One log line naming every metric of `what` that was not computed, grouped by why."""
    if not skipped:
        return
    by_reason: dict[str, list[str]] = {}
    for name, reason in skipped.items():
        by_reason.setdefault(reason, []).append(name)
    reasons = "; ".join(f"{', '.join(names)} ({reason})" for reason, names in by_reason.items())
    log.info("%s: not computed: %s", what, reasons)
