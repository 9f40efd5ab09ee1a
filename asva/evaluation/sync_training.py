"""`sweeps/train_sync_classifier.py`: train the synchronization classifier, save it, record it in MLflow.

The classifier (asva/evaluation/sync_classifier.py) trains on the training split of `data` with the
contrastive loss over time-shifted windows (Eq. 1 of asva-eccv2024.txt), and its accuracy at picking
the unshifted window is measured on the test split. The checkpoint (`output`) is what
`eval.networks.sync_classifier.checkpoint=...` loads; it records the dataset it was trained on, so a
classifier trained on the synthetic benchmark never yields the reserved `relsync`/`alignsync` names.
The run has role `sync_classifier`: params, the loss curve, `sync_test_accuracy` and `sync_chance`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from asva.config.schema import TrainSyncClassifierConfig
from asva.data import sources
from asva.data.dataset import load_split
from asva.errors import ConfigError
from asva.evaluation.networks import train_sync_classifier
from asva.tracking.runs import RunLogger, flatten
from asva.training.checkpoint import save_checkpoint

log = logging.getLogger(__name__)

ROLE_SYNC_CLASSIFIER = "sync_classifier"


def run_sync_classifier_training(cfg: TrainSyncClassifierConfig) -> dict[str, float]:
    sync = cfg.classifier
    if sync.checkpoint:
        raise ConfigError("classifier.checkpoint: this script trains a classifier; name where to save it with output=")
    for key in ("steps", "lr", "batch_size", "temperature", "window_seconds", "max_shift_seconds"):
        if getattr(sync, key) <= 0:
            raise ConfigError(f"classifier.{key}: must be > 0, got {getattr(sync, key)}")
    if cfg.data.fps not in (6, 12):
        raise ConfigError(f"data.fps: must be 6 or 12, got {cfg.data.fps}")
    cache_dir = Path(cfg.paths.cache_dir)
    root = sources.benchmark_root(cfg.data, cache_dir)
    sources.ensure_generated(cfg.data, root)
    train = load_split(root, "train", cfg.data, cache_dir)
    test = load_split(root, "test", cfg.data, cache_dir)
    run = RunLogger.create(cfg.study, ROLE_SYNC_CLASSIFIER, f"sync classifier {cfg.data.name}")
    try:
        run.log_params({"dataset": cfg.data.name, "fps": str(cfg.data.fps), "seed": str(cfg.seed), "output": str(Path(cfg.output).resolve())})
        run.log_params({f"cfg.classifier.{k}": v for k, v in flatten(asdict(sync)).items()})
        payload = train_sync_classifier(train, test, sync, cfg.data.fps, cfg.data.name, cfg.seed)
        for step, loss in enumerate(payload["losses"]):
            run.log_curve_point("train_loss", loss, step)
        save_checkpoint(Path(cfg.output), payload)
        metrics = {"sync_test_accuracy": payload["test_accuracy"], "sync_chance": payload["chance"], "num_test_clips": float(len(test))}
        run.log_metrics(metrics)
    except BaseException:
        run.finish("FAILED")
        raise
    run.finish()
    log.info("synchronization classifier saved to %s: %s", cfg.output, metrics)
    return metrics
