"""`sweeps/train_sync_classifier.py`: train a synchronization classifier, save it, record it in MLflow.

`classifier.kind` picks which (docs/metrics.md):
- `asva_small` (asva/evaluation/sync_classifier.py): the project's small classifier, trained on the
  training split of `data` with the contrastive loss over time-shifted windows (Eq. 1 of
  asva-eccv2024.txt); its accuracy at picking the unshifted window is measured on the test split.
- `avsyncd` (asva/evaluation/avsync_training.py): the papers' classifier with the papers' recipe
  (`classifier.avsyncd`), on whole videos of at least 6 s; A2V and V2A accuracy on the test videos.
The checkpoint (`output`) is what `eval.networks.sync_classifier.checkpoint=...` loads (with the same
`kind`); it records the dataset it was trained on (and, for avsyncd, the recipe), so a classifier
trained on the synthetic benchmark, or the small one anywhere, never yields the reserved
`relsync`/`alignsync` names. The run has role `sync_classifier`: params, the loss curve,
`sync_test_accuracy` (avsyncd: the mean of `sync_test_accuracy_a2v` and `_v2a`) and `sync_chance`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from asva.config.commands import TrainSyncClassifierConfig
from asva.config.validate import check_files_and_device
from asva.data import sources
from asva.data.dataset import load_split
from asva.evaluation.avsync_training import train_avsyncd, whole_videos
from asva.evaluation.networks import train_sync_classifier
from asva.files import save_torch
from asva.models.placement import resolve as resolve_placement
from asva.tracking.runs import RunLogger, flatten

log = logging.getLogger(__name__)

ROLE_SYNC_CLASSIFIER = "sync_classifier"


def _train_small(cfg: TrainSyncClassifierConfig, root: Path, cache_dir: Path) -> tuple[dict, dict[str, float]]:
    train = load_split(root, "train", cfg.data, cache_dir).decoded(cfg.data.num_workers)  # its fixed clips
    test = load_split(root, "test", cfg.data, cache_dir)
    payload = train_sync_classifier(train, test, cfg.classifier, cfg.data.fps, cfg.data.name, cfg.seed)
    metrics = {"sync_test_accuracy": payload["test_accuracy"], "sync_chance": payload["chance"]}
    metrics["num_test_clips"] = float(len(test))
    return payload, metrics


def _train_avsyncd(cfg: TrainSyncClassifierConfig, root: Path, cache_dir: Path) -> tuple[dict, dict[str, float]]:
    train = whole_videos(root, "train", cfg.data, cache_dir)
    test = whole_videos(root, "test", cfg.data, cache_dir)
    # On the GPU when there is one, in bf16-mixed as the jobs (asva/evaluation/avsync_training.py says why).
    placement = resolve_placement("auto", "auto")
    payload = train_avsyncd(train, test, cfg.classifier.avsyncd, cfg.data.name, cfg.seed, placement)
    a2v, v2a = payload["test_accuracy_a2v"], payload["test_accuracy_v2a"]
    metrics = {
        "sync_test_accuracy": (a2v + v2a) / 2,
        "sync_test_accuracy_a2v": a2v,
        "sync_test_accuracy_v2a": v2a,
        "sync_chance": payload["chance"],
        "num_test_videos": float(payload["num_test_videos"]),
    }
    return payload, metrics


def run_sync_classifier_training(cfg: TrainSyncClassifierConfig) -> dict[str, float]:
    sync = cfg.classifier
    check_files_and_device(cfg)
    cache_dir = Path(cfg.paths.cache_dir)
    root = sources.benchmark_root(cfg.data, cache_dir)
    sources.ensure_generated(cfg.data, root)
    train = _train_avsyncd if sync.kind == "avsyncd" else _train_small
    run = RunLogger.create(cfg.study, ROLE_SYNC_CLASSIFIER, f"sync classifier {sync.kind} {cfg.data.name}")
    try:
        run.log_params(
            {
                "dataset": cfg.data.name,
                "fps": str(cfg.data.fps),
                "seed": str(cfg.seed),
                "output": str(Path(cfg.output).resolve()),
            }
        )
        run.log_params({f"cfg.classifier.{k}": v for k, v in flatten(asdict(sync)).items()})
        payload, metrics = train(cfg, root, cache_dir)
        for step, loss in enumerate(payload["losses"]):
            run.log_curve_point("train_loss", loss, step)
        save_torch(Path(cfg.output), payload)
        run.log_metrics(metrics)
    except BaseException:
        run.finish("FAILED")
        raise
    run.finish()
    log.info("synchronization classifier saved to %s: %s", cfg.output, metrics)
    return metrics
