"""`sweeps/prepare.py`: the frozen first stage's latents of every training video, encoded once.

For each set a job with this data and model trains on (the training split and the pretraining
pool, as `job_pool` finds it: a folder, VGGSound's CSV or a curated manifest), every frame of every
video on the `data.fps` grid goes through the frozen first stage (the DynamiCrafter VAE's posterior
mode, or the embedded model's patch autoencoder), on `train.device` in `train.precision` as the jobs
place it, and is written in `latent_dtype` to the cache the jobs read (asva/data/latent_cache.py).

A set's videos are split into `shards` consecutive shards; a run encodes shard `shard`. A shard with
its index written is done and skipped by a rerun (a killed or requeued run redoes only the shard it
was in); the shards of a multirun run one after another, as local processes or as a SLURM array
(`-m shards=N 'shard=range(0,N)' hydra/launcher=...`). Streamed videos are decoded by
`data.num_workers` DataLoader processes while this one encodes.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from asva.config.commands import PrepareConfig
from asva.config.validate import check_files_and_device
from asva.cpus import usable_cpus
from asva.data import sources
from asva.data.dataset import ClipSet, job_pool, load_split, streams
from asva.data.latent_cache import SETTINGS, NpyAppender, cache_folder, first_stage_key, row_videos, shard_stem
from asva.data.loader import one_thread_per_worker
from asva.data.streaming import StreamedWindows
from asva.errors import DataError
from asva.files import claim_settings, write_text
from asva.models.first_stage import frames_to_unit
from asva.models.placement import Placement
from asva.models.placement import resolve as resolve_placement
from asva.progress import progress

log = logging.getLogger(__name__)

DTYPES = {"float16": np.float16, "float32": np.float32}
# Frames per first-stage forward pass. A video is cut into near-equal chunks of at most this many
# (never a lone frame): convolution kernels may round a batch of one differently from a larger one.
ENCODE_FRAMES = 32


def first_stage(cfg: PrepareConfig, pool: ClipSet | None, cache_dir: Path) -> nn.Module:
    """The jobs' frozen first stage: DynamiCrafter's VAE from model.base_checkpoint (nothing else of
    the 2B-parameter base is built), or the embedded base's patch autoencoder (the base trained once
    on the pool and cached, as a job would)."""
    if cfg.model.name == "dynamicrafter":
        from asva.models.checkpoints import load_parts, read_lightning_state
        from asva.models.paper_model import VARIANTS, LatentCodec, sd_vae

        if not cfg.model.base_checkpoint:
            raise DataError("model.base_checkpoint: the paper model's VAE is in DynamiCrafter's official model.ckpt")
        vae = sd_vae(cfg.model.paper_width)
        load_parts(read_lightning_state(cfg.model.base_checkpoint), {"first_stage_model": vae})
        return LatentCodec(vae, VARIANTS[cfg.model.variant]["latent_scale"]).requires_grad_(False).eval()
    from asva.training.components import base_model

    if pool is None and not cfg.model.base_checkpoint:
        raise DataError("data.pool_root: the stand-in base (its first stage) trains on a pretraining pool; none is set")
    return base_model(cfg, pool, cache_dir).first_stage


def encode_frames(stage: nn.Module, placement: Placement, frames: torch.Tensor) -> torch.Tensor:
    """Latents [n, C, h, w] of frames [n, H, W, 3] uint8, as `encode_video` computes them in a job."""
    chunks = -(-len(frames) // ENCODE_FRAMES)
    bounds = [round(i * len(frames) / chunks) for i in range(chunks + 1)]
    encoded = []
    with torch.no_grad(), placement.autocast():
        for begin, end in itertools.pairwise(bounds):
            block = placement.to_device(frames[None, begin:end])
            encoded.append(stage.encode(frames_to_unit(block))[0].transpose(0, 1).float().cpu())
    return torch.cat(encoded)


class VideoFrames(Dataset):
    """Item i: every frame of row `rows[i]`'s video (or why it could not be read)."""

    def __init__(self, windows, rows: list[int]):
        self.windows, self.rows = windows, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        try:
            frames, start = self.windows.video_frames(row)
        except DataError as error:
            return {"row": row, "failed": str(error)}
        return {"row": row, "frames": frames, "start": start}


def prepare_shard(
    clips: ClipSet,
    stage: nn.Module,
    placement: Placement,
    cache_dir: Path,
    shard: int,
    shards: int,
    dtype: str,
    workers: int,
    name: str,
) -> dict[str, float]:
    """Encode shard `shard` of `shards` of the set's videos into its cache folder (skipped when done).
    Returns its counts: videos, frames, skipped files, bytes written and seconds."""
    stage_key = first_stage_key(stage)
    folder = cache_folder(cache_dir, clips.source, stage_key)
    settings = {
        "source": clips.source,
        "first_stage": stage_key,
        "shards": shards,
        "dtype": dtype,
        "fps": clips.windows.fps,
        "videos": len(clips),
        "set": name,
    }
    claim_settings(folder / SETTINGS, settings, f"{folder} was prepared")
    stem = shard_stem(shard, shards)
    index_path = folder / f"{stem}.json"
    if index_path.is_file():
        log.info("latent cache of %s: shard %d of %d is already done (%s)", name, shard, shards, index_path)
        return json.loads(index_path.read_text())["counts"]
    for stale in folder.glob(f"{stem}.npy.*.partial"):  # left by a killed run of this shard
        stale.unlink()
    started = time.monotonic()
    rows = list(range(shard * len(clips) // shards, (shard + 1) * len(clips) // shards))
    streamed = isinstance(clips.windows, StreamedWindows)
    workers = workers if streamed and rows else 0
    loader = DataLoader(
        VideoFrames(clips.windows, rows),
        batch_size=None,
        num_workers=workers,
        worker_init_fn=one_thread_per_worker if workers else None,
    )
    names = row_videos(clips)
    videos, skipped, writer = [], [], None
    desc = f"latents of {name}: shard {shard} of {shards} ({len(rows)} videos)"
    for item in progress(loader, desc=desc, total=len(rows), unit="video"):
        if "failed" in item:
            skipped.append(item["failed"])
            log.warning("latent cache: skipping %s", item["failed"])
            continue
        latents = encode_frames(stage, placement, item["frames"]).numpy()
        if writer is None:
            writer = NpyAppender(folder / f"{stem}.npy", latents.shape[1:], DTYPES[dtype])
        video_id, path = names[item["row"]]
        offset = writer.append(latents)
        videos.append(
            {"video_id": video_id, "path": path, "start": item["start"], "frames": len(latents), "offset": offset}
        )
    if writer is None:  # nothing to write: an empty shard still marks its place
        np.save(folder / f"{stem}.npy", np.zeros((0,), dtype=DTYPES[dtype]))
    else:
        writer.close()
    frames = sum(video["frames"] for video in videos)
    counts = {
        "videos": len(videos),
        "frames": frames,
        "skipped": len(skipped),
        "bytes": (folder / f"{stem}.npy").stat().st_size,
        "seconds": round(time.monotonic() - started, 3),
    }
    precision = str(placement.compute_dtype or "fp32")
    index = {"videos": videos, "skipped": skipped, "counts": counts, "precision": precision}
    write_text(index_path, json.dumps(index))
    log.info(
        "latent cache of %s: shard %d of %d done, %d videos (%d frames, %.1f MB) in %.1f s, %d skipped -> %s",
        name,
        shard,
        shards,
        len(videos),
        frames,
        counts["bytes"] / 1e6,
        counts["seconds"],
        len(skipped),
        folder,
    )
    return counts


def run_prepare(cfg: PrepareConfig) -> dict[str, float]:
    """Encode shard `cfg.shard` of every set named in `cfg.sets`; returns each set's counts."""
    check_files_and_device(cfg)
    cache_dir = Path(cfg.paths.cache_dir)
    root = sources.benchmark_root(cfg.data, cache_dir)
    sources.ensure_generated(cfg.data, root)
    pool, _ = job_pool(cfg.data, root, cache_dir)  # less the videos holding an evaluation video's footage
    sets = {}
    if "train" in cfg.sets:
        sets["train"] = load_split(root, "train", cfg.data, cache_dir)
    if "pool" in cfg.sets:
        if pool is None:
            log.info("latent cache: the data names no pretraining pool; only the training split is encoded")
        else:
            sets["pool"] = pool
    placement = resolve_placement(cfg.train.device, cfg.train.precision)
    stage = placement.place(first_stage(cfg, pool, cache_dir), trainable=[])
    workers = cfg.data.num_workers
    # The encoding threads share the CPUs this process may use with the decoding workers.
    torch.set_num_threads(cfg.train.num_threads or max(1, usable_cpus() - (workers if streams(cfg.data) else 0)))
    metrics: dict[str, float] = {}
    for name, clips in sets.items():
        if clips.windows is None or not clips.windows.has_choice:
            log.info(
                "latent cache of %s: every video holds one clip (or data.train_clip_start=start): a stage "
                "encodes them once up front, there is nothing to cache",
                name,
            )
            continue
        counts = prepare_shard(
            clips, stage, placement, cache_dir, cfg.shard, cfg.shards, cfg.latent_dtype, workers, name
        )
        metrics.update({f"prepare_{name}_{key}": float(value) for key, value in counts.items()})
    return metrics
