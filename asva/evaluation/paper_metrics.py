"""FVD, IA, IT, RelSync and AlignSync of generated clips, with their reference rows.

Every metric is computed at 6 FPS (asva/evaluation/protocol.py) for three sets of clips against the
same real clips and audio: the generated clips, the ground truth itself (`_ref_groundtruth`) and the
first frame repeated (`_ref_static`). FVD of the ground truth against itself is 0 by definition and
is not logged; fewer than 2 clips have no FVD (named in `PaperScores.skipped`). With eval.fid, FID
of the frames too (asva/evaluation/fid.py). Names come from `EvalNetworks.name`: reserved names
only with the papers' networks. The networks run on `nets.device`, `batch_size` clips at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from asva.evaluation.embedders import audio_frame_similarity, text_frame_similarity
from asva.evaluation.fid import fid
from asva.evaluation.frechet import MIN_SAMPLES, TOO_FEW_CLIPS
from asva.evaluation.fvd import fvd
from asva.evaluation.networks import EvalNetworks
from asva.evaluation.protocol import at_eval_fps
from asva.evaluation.sync_classifier import sync_scores
from asva.evaluation.sync_metrics import alignsync, frame_similarity_score, relsync
from asva.tracking.store import GROUNDTRUTH_SUFFIX, STATIC_SUFFIX


@dataclass
class PaperScores:
    metrics: dict[str, float]  # aggregated over clips
    per_clip: dict[str, np.ndarray]  # metric name -> [N] values (FVD has none: it is a set distance)
    skipped: dict[str, str] = field(default_factory=dict)  # metric name -> why it was not computed


def static_like(frames: np.ndarray) -> np.ndarray:
    return np.repeat(frames[:, :1], frames.shape[1], axis=1)


def paper_scores(
    nets: EvalNetworks,
    real_frames: np.ndarray,
    fbank: torch.Tensor,
    captions: list[str],
    generated: np.ndarray,
    fps: int,
    batch_size: int,
    suffix: str = "",
) -> PaperScores:
    """Scores of `generated` (and of the reference rows when suffix is ""): frames [N, T, H, W, 3] uint8 at `fps`."""
    real = at_eval_fps(np.asarray(real_frames), fps)
    candidates = {suffix: at_eval_fps(np.asarray(generated), fps)}
    if not suffix:
        candidates.update({GROUNDTRUTH_SUFFIX: real, STATIC_SUFFIX: static_like(real)})
    device = nets.device
    ia_real = audio_frame_similarity(nets.audio_vision, fbank, real[:, :1], batch_size, device)[:, 0]  # IA(a, v_1)
    phi_real = sync_scores(nets.sync, fbank, real, batch_size)
    metrics: dict[str, float] = {}
    per_clip: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    for tail, videos in candidates.items():
        ia_frames = audio_frame_similarity(nets.audio_vision, fbank, videos, batch_size, device)
        phi = sync_scores(nets.sync, fbank, videos, batch_size)
        per_clip[nets.name("ia") + tail] = frame_similarity_score(ia_frames)
        it_frames = text_frame_similarity(nets.text_vision, captions, videos, batch_size, device)
        per_clip[nets.name("it") + tail] = frame_similarity_score(it_frames)
        per_clip[nets.name("relsync") + tail] = relsync(phi, phi_real)
        per_clip[nets.name("alignsync") + tail] = alignsync(phi, phi_real, ia_frames, ia_real)
        if tail != GROUNDTRUTH_SUFFIX:
            if len(real) >= MIN_SAMPLES:
                metrics[nets.name("fvd") + tail] = fvd(real, videos, nets.video_features, batch_size, device)
            else:
                skipped[nets.name("fvd") + tail] = TOO_FEW_CLIPS
        if tail != GROUNDTRUTH_SUFFIX and nets.fid_inception is not None:
            metrics[nets.name("fid") + tail] = fid(real, videos, nets.fid_inception, batch_size)
    metrics.update({name: float(values.mean()) for name, values in per_clip.items()})
    return PaperScores(metrics, per_clip, skipped)


def per_class_rows(labels: list[str], per_clip: dict[str, np.ndarray]) -> list[dict[str, object]]:
    """One row per class and metric: the metric's mean over that class's clips."""
    rows = []
    for label in sorted(set(labels)):
        members = np.array([i for i, lab in enumerate(labels) if lab == label])
        for name, values in sorted(per_clip.items()):
            rows.append({"class": label, "metric": name, "value": float(values[members].mean()), "clips": len(members)})
    return rows
