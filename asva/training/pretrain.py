"""Stage 1, trained once per pretraining configuration and shared by every finetuning job.

The cache key hashes everything the pretrained adapters depend on (model, audio taps, window,
pretraining recipe, the curation choice and its filter settings, the pool itself), never the
finetuning settings or the job's seed, so a K-shot sweep trains stage 1 once and every job that
needs it loads the same weights, and `curation=none` and `curation=auto` never share weights.

With `curation=auto` the pool's video files go through the curation pipeline
(asva/data/curation.py), itself cached and resumable under cache_dir/curation/<key>. A pool of
whole videos (the default, `data.train_clip_start=uniform`) draws each step's clip of a video from
its longest kept segment; a pool of fixed clips keeps a clip when it lies inside a kept segment, and
a video whose kept segment lies elsewhere contributes a clip decoded from that segment.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from asva import distributed
from asva.config.hashing import stable_hash
from asva.config.schema import ExperimentConfig
from asva.data import curation
from asva.data.dataset import ClipSet, VideoEntry, concatenate, decode_entries
from asva.errors import DataError
from asva.files import build_once, load_torch
from asva.models.asva_model import ASVAModel
from asva.training.adapters import train_adapter_stage
from asva.training.components import clipset_fingerprint

log = logging.getLogger(__name__)

PRETRAIN_SEED = 0
# Part of stage 1's cache key: bump it when the same settings would train other adapters.
PRETRAIN_CACHE_VERSION = "v3"  # v3: clips re-drawn at every step


def filter_settings(cfg: ExperimentConfig) -> dict | None:
    """The curation settings that change which clips are kept (None without curation)."""
    if cfg.curation != "auto":
        return None
    return {k: v for k, v in asdict(cfg.curation_filters).items() if k != "workers"}


def pretrain_key(cfg: ExperimentConfig, pool: ClipSet) -> str:
    return stable_hash(
        cfg.audio_layers,
        cfg.window_radius,
        cfg.curation,
        filter_settings(cfg),
        asdict(cfg.train.pretrain),
        asdict(cfg.model),
        asdict(cfg.audio),
        asdict(cfg.diffusion),
        cfg.data.fps,
        clipset_fingerprint(pool),
        PRETRAIN_CACHE_VERSION,
    )


def pretrained_adapters(
    cfg: ExperimentConfig,
    model: ASVAModel,
    pool: ClipSet | None,
    cache_dir: Path,
    on_trained: Callable[[str, list[float], dict[str, str], int], None] | None,
    failed: set[str] | None = None,
) -> tuple[str, dict[str, torch.Tensor]]:
    """(key, adapter weights) of stage 1; trains it (and calls on_trained) only if not cached. The
    pool clips training could not read are added to `failed`.

    Under data parallelism every rank calls this and they train together: rank 0 looks up the cache
    (under its lock, so concurrent jobs still train a key once) and curates the pool, then tells the
    other ranks whether to train or to load.
    """
    if pool is None:
        raise DataError("data.pool_root: stage 1 (pretrain=true) trains on a pretraining pool; none is configured")
    key = pretrain_key(cfg, pool)
    folder = cache_dir / "pretrain" / key
    world = distributed.current()

    def train(kept: ClipSet, rejected: dict[str, str]) -> dict:
        model.reset_adapters(PRETRAIN_SEED)
        losses = train_adapter_stage(
            model,
            kept,
            cfg.train.pretrain,
            cfg.diffusion,
            PRETRAIN_SEED,
            desc=f"stage 1: pretraining adapters on {len(kept)} pool videos (trained once)",
            data=cfg.data,
            checkpoint_path=folder / "progress.pt",
            data_parallel=world.size > 1,
            failed=failed,
            cache_dir=cache_dir,
        )
        if on_trained is not None:
            on_trained(key, losses, rejected, len(kept))
        return {"weights": model.adapter_state_dict(), "losses": losses}

    if world.is_main:
        trained_here = []

        def build() -> dict:
            kept, rejected = curated_pool(cfg, pool, cache_dir)
            distributed.broadcast_from_main(True)  # the other ranks train with this one
            trained_here.append(True)
            return train(kept, rejected)

        payload = build_once(folder / "adapters.pt", build)
        if not trained_here:
            distributed.broadcast_from_main(False)  # cached: the other ranks load it
        return key, payload["weights"]
    log.info("rank %d waits for rank 0 to look up stage 1 %s (and curate the pool if it trains it)", world.rank, key)
    if distributed.broadcast_from_main(None):
        return key, train(*curated_pool(cfg, pool, cache_dir))["weights"]  # the curation rank 0 cached
    return key, load_torch(folder / "adapters.pt")["weights"]


def curated_pool(cfg: ExperimentConfig, pool: ClipSet, cache_dir: Path) -> tuple[ClipSet, dict[str, str]]:
    """(clips stage 1 trains on, {rejected video id: reasons}) for the job's curation choice. A pool
    read from a curated manifest (`data.pool_manifest`, sweeps/curate.py) is never curated again."""
    if cfg.curation == "none":
        return pool, {}
    if cfg.data.pool_manifest is not None:
        log.info("the pool is the curated manifest %s: curation=auto applies no filter again", cfg.data.pool_manifest)
        return pool, {}
    if not pool.paths:
        raise ValueError("the pool was decoded without its file paths; clear paths.cache_dir/decoded")
    filters = cfg.curation_filters
    folder = (
        cache_dir
        / "curation"
        / stable_hash(filter_settings(cfg), pool.video_ids, pool.paths, clipset_fingerprint(pool))
    )
    videos = [curation.Video(vid, label, path) for vid, label, path in zip(pool.video_ids, pool.labels, pool.paths)]
    verdicts = curation.run_filters(videos, filters, folder)
    kept, rejected = (
        _kept_spans(pool, verdicts) if pool.windows is not None else _kept_clips(cfg, pool, verdicts, folder, cache_dir)
    )
    if distributed.current().is_main:
        curation.write_outputs(folder, verdicts, filters)  # before a failure too: its rejections.csv says why
    if len(kept) == 0:
        raise DataError(
            f"curation rejected every one of the {len(pool)} pool videos (see {folder / curation.REJECTIONS})"
        )
    return kept, rejected


def _rejection(verdict: curation.Verdict) -> str:
    return "; ".join(f"{stage}: {reason}" for stage, _, _, reason in verdict.rejected) or "no segment long enough"


def _kept_spans(pool: ClipSet, verdicts: dict[str, curation.Verdict]) -> tuple[ClipSet, dict[str, str]]:
    """A pool of whole videos: each video's training clips are drawn from its longest kept segment.

    (Its fixed clips stay the pool's; stage 1 reads only the kept spans.)"""
    keep, spans, rejected = [], [], {}
    for index, video_id in enumerate(pool.video_ids):
        verdict = verdicts[video_id]
        fitting = [(a, b) for a, b in verdict.kept if pool.windows.fits(index, a, b)]
        if fitting:
            keep.append(index)
            spans.append(max(fitting, key=lambda span: span[1] - span[0]))
        else:
            rejected[video_id] = _rejection(verdict)
    kept = pool.subset(keep)
    kept.windows = pool.windows.restrict(keep, spans)
    return kept, rejected


def _kept_clips(
    cfg: ExperimentConfig, pool: ClipSet, verdicts: dict[str, curation.Verdict], folder: Path, cache_dir: Path
) -> tuple[ClipSet, dict[str, str]]:
    """A pool of fixed clips: a clip outside every kept segment is replaced by the start of one."""
    keep, extra, rejected = [], [], {}
    seconds = cfg.data.clip_seconds
    for index, video_id in enumerate(pool.video_ids):
        verdict = verdicts[video_id]
        start = pool.starts[index] if pool.starts else 0.0
        if any(a - 1e-3 <= start and start + seconds <= b + 1e-3 for a, b in verdict.kept):
            keep.append(index)
        elif any(b - a >= seconds for a, b in verdict.kept):
            segment = next((a, b) for a, b in verdict.kept if b - a >= seconds)
            extra.append(VideoEntry(video_id, pool.labels[index], Path(pool.paths[index]), segment[0]))
        else:
            rejected[video_id] = _rejection(verdict)
    kept = pool.subset(keep)
    if extra:
        manifest = folder / curation.JOURNAL
        segments = decode_entries(f"curated-{folder.name}", extra, pool.classes, cfg.data, cache_dir, manifest, {})
        kept = concatenate(kept, segments)
    return kept, rejected
