"""A job's evaluation on the test split of the benchmark (the embedded one or a real one).

Each test clip's first frame and audio condition a generated clip (asva/evaluation/generation.py:
in batches, saved as they are made, shared out over the ranks of a multi-rank job), and rank 0
scores them (asva/evaluation/scoring.py, where the metric names are listed):
- the generated clips, with the reference rows;
- with eval.null_audio_control, the same clips sampled with the null audio (`_null_audio`);
- with eval.paper_metrics (default), FVD, IA, IT, RelSync, AlignSync, by networks on the model's
  device; their stand-ins train once on the training split (its frames, sound and class labels,
  no event times) and are cached;
- with eval.openclass (default) on the synthetic dataset, held-out clips of the pool-only classes
  (asva/data/openclass.py), as `<metric>_openclass`.
One log line names every metric that is not computed and why; the open-class ones are named all
at once as `*_openclass` when the benchmark has no open-class clips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asva import distributed
from asva.config.schema import ExperimentConfig
from asva.data import sources
from asva.data.dataset import ClipSet, load_split
from asva.data.openclass import openclass_clips
from asva.evaluation.generation import generate, model_key
from asva.evaluation.networks import evaluation_networks
from asva.evaluation.scoring import log_skipped, score
from asva.models.asva_model import ASVAModel
from asva.tracking.store import OPENCLASS_SUFFIX

EVERY_OPENCLASS_METRIC = "*" + OPENCLASS_SUFFIX  # how the log line names them all when none is computed
OPENCLASS_NOISE = 500_009  # the open-class clips' starting noise, apart from the test split's


@dataclass
class Evaluation:
    metrics: dict[str, float]
    generated: np.ndarray  # [N, T, H, W, 3] uint8, audio-conditioned
    video_ids: list[str]
    per_class: list[dict[str, object]] = field(default_factory=list)  # per class and metric (paper metrics)


def openclass_to_score(cfg: ExperimentConfig) -> tuple[ClipSet | None, dict[str, str]]:
    """The open-class clips to score, or None and why their metrics are not computed (nothing to
    say when eval.openclass is off: nothing was asked for)."""
    if not cfg.eval.openclass:
        return None, {}
    clips, why_not = openclass_clips(cfg)
    return clips, {} if clips is not None else {EVERY_OPENCLASS_METRIC: why_not}


def evaluate(model: ASVAModel, test: ClipSet, cfg: ExperimentConfig, train: ClipSet | None = None) -> Evaluation | None:
    """Sample the test clips (every rank its share) and score them (rank 0); None on the other ranks.

    `train` (loaded when not given) trains the metric stand-ins.
    """
    if cfg.eval.max_test_clips is not None:
        test = test.subset(list(range(min(len(test), cfg.eval.max_test_clips))))
    key = model_key(cfg, model)
    generated = generate(model, test, cfg, key, "sampling test clips (with audio)")
    # The null-audio pass only feeds the `_null_audio` controls: sampled only when they are asked for.
    # The same starting noise as the audio pass, so the difference is the audio alone.
    null_audio = None
    if cfg.eval.null_audio_control:
        null_audio = generate(model, test, cfg, key, "sampling test clips (null audio)", use_audio=False)
    openclass, skipped = openclass_to_score(cfg)
    openclass_generated = None
    if openclass is not None:
        openclass_generated = generate(
            model, openclass, cfg, key, "sampling open-class clips", noise_offset=OPENCLASS_NOISE
        )
    if not distributed.current().is_main:
        return None

    nets = None
    if cfg.eval.paper_metrics:
        if train is None:
            cache_dir = Path(cfg.paths.cache_dir)
            train = load_split(sources.benchmark_root(cfg.data, cache_dir), "train", cfg.data, cache_dir)
        nets = evaluation_networks(cfg, train, Path(cfg.paths.cache_dir)).to(model.placement.device)
    scores = score(cfg, test, generated, nets, "num_test_clips", null_audio=null_audio)
    metrics = scores.metrics
    skipped = scores.skipped | skipped
    if openclass is not None:
        count = "num_test_clips" + OPENCLASS_SUFFIX
        scored = score(cfg, openclass, openclass_generated, nets, count, suffix=OPENCLASS_SUFFIX)
        metrics |= scored.metrics
        skipped |= scored.skipped
    log_skipped(skipped, f"evaluation of {cfg.data.name}")
    return Evaluation(metrics=metrics, generated=generated, video_ids=test.video_ids, per_class=scores.per_class)
