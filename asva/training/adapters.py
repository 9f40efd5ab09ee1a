"""Training the audio adapters: one stage (pretraining on the pool, or finetuning on K shots)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable

import torch

from asva import distributed
from asva.config.schema import DataConfig, DiffusionConfig, StageConfig
from asva.data.audio import fbank
from asva.data.dataset import ClipSet
from asva.data.latent_cache import CachedLatents, open_cache
from asva.data.loader import ClipBatch, StepDraws, clip_loader, collate
from asva.models.asva_model import ASVAModel, AudioFeatures
from asva.models.diffusion import drop_masks, noised_batch, training_scheduler
from asva.training.components import captions
from asva.training.loop import Batches, LoopSpec, train_loop

log = logging.getLogger(__name__)


class StageClips:
    """What one stage trains on, step by step: (first-frame source frames, latents, audio features).

    A set that keeps whole videos with more than one clip to draw gives each video of a batch a new
    uniformly placed clip at every step, read by a DataLoader (asva/data/loader.py: from memory, or
    streamed from the files) and encoded by the frozen first stage and audio encoders then; when
    `cache_dir` holds the set's latents for this first stage (sweeps/prepare.py), they are read
    from there instead of running the first stage. Otherwise every video has one clip (the fixed
    clips, or the only clip a short video holds), encoded once up front.
    """

    cached: CachedLatents | None = None  # where the drawn clips' latents are read from (None: encoded)

    def __init__(self, model: ASVAModel, clips: ClipSet, data: DataConfig, cache_dir: Path | None = None):
        self.model, self.clips, self.data = model, clips, data
        self.placement = model.placement
        self.failed: set[str] = set()  # the clips that could not be read, each logged once
        self.windows = clips.windows if clips.windows is not None and clips.windows.has_choice else None
        if self.windows is not None:
            note = "no latent cache given"
            if cache_dir is not None:
                self.cached, note = open_cache(cache_dir, clips, model.base.first_stage, self.windows.clip_frames)
            fallback = "" if self.cached else "; the first stage encodes every batch"
            log.info("%d training videos: %s%s", len(clips), note, fallback)
        else:
            log.info("%d training videos, one clip each: the first stage encodes them once, up front", len(clips))
            if clips.windows is not None:  # the only clip of each row (a curated span may have moved it)
                rows = torch.arange(len(clips))
                frames, audio = clips.windows.clips(rows, clips.windows.row_first)
                self.frames, bank = frames, fbank(audio, data.sample_rate)
            else:
                self.frames, audio, bank = clips.frames, clips.audio, clips.fbank
            self.frames = self.placement.to_device(self.frames)
            with torch.no_grad(), self.placement.autocast():
                self.latents = model.base.encode_video(self.frames)
                self.features = model.encode_audio(bank, audio, data.sample_rate)

    def batches(self, batch_size: int, seed: int, data_parallel: bool) -> Batches:
        """The stage's batches from a first to a total step (`train_loop`'s `batches`)."""

        def steps(first: int, total: int) -> Iterable[ClipBatch]:
            draws = StepDraws(len(self.clips), batch_size, seed, first, total, data_parallel)
            if self.windows is None:  # encoded up front: a batch names its rows
                return (collate([{"draw": draw} for draw in step_draws]) for step_draws in draws)
            pin = self.placement.device.type == "cuda"
            data, cached = self.data, self.cached
            return clip_loader(
                self.windows, data.sample_rate, draws, data.num_workers, data.prefetch_factor, pin, cached
            )

        return steps

    def encode(self, batch: ClipBatch) -> tuple[torch.Tensor, torch.Tensor, AudioFeatures]:
        """(frames, latents, audio features) of the batch's clips, on the model's device. With cached
        latents, `frames` is each clip's first frame repeated over the clip (a view: the conditions
        read the first frame only)."""
        for failure in batch.failed:  # "path: reason": one per file, whichever clip of it failed first
            if not any(failure.split(": ")[0] == known.split(": ")[0] for known in self.failed):
                self.failed.add(failure)
                log.warning("training skips a clip it cannot read: %s", failure)
        if self.windows is None:
            mine = batch.rows.to(self.placement.device)
            return self.frames[mine], self.latents[mine], self.features.select(mine)
        frames = self.placement.to_device(batch.frames)
        with torch.no_grad(), self.placement.autocast():
            if batch.latents is None:
                latents = self.model.base.encode_video(frames)
            else:
                # In the dtype the first stage computes in, as if it had encoded them here.
                latents = self.placement.to_device(batch.latents).to(self.placement.compute_dtype or torch.float32)
                if batch.uncached is not None:
                    encoded = self.model.base.encode_video(self.placement.to_device(batch.uncached_frames))
                    latents[batch.uncached.to(latents.device)] = encoded.to(latents.dtype)
                frames = frames.expand(-1, latents.shape[2], -1, -1, -1)
            features = self.model.encode_audio(batch.fbank, batch.audio, self.data.sample_rate)
        return frames, latents, features


def adapter_loss(
    model: ASVAModel, source: StageClips, diffusion: DiffusionConfig, data_parallel: bool = False
) -> Callable[[ClipBatch, torch.Generator], torch.Tensor]:
    """The loss of one step over a batch of clips: denoising with cond_drop independent
    image/text/audio dropout, on the model's device and precision; base and encoders frozen.

    With `data_parallel`, every rank draws the dropout and noise of the whole global batch but
    encodes and denoises only its own rows (asva/distributed.py), so the ranks together compute the
    one-process step. A clip that could not be read is left out of its batch.
    """
    scheduler = training_scheduler(diffusion)

    def loss(batch: ClipBatch, gen: torch.Generator) -> torch.Tensor:
        drop_image, drop_text, drop_audio = drop_masks(batch.global_size, diffusion.cond_drop, gen)
        if len(batch.rows) == 0:  # nothing readable: a zero loss that still reaches every adapter
            return sum(p.sum() for p in model.adapter_parameters()) * 0.0
        frames, latents, features = source.encode(batch)
        rows = batch.positions
        noisy, timesteps, target = noised_batch(scheduler, latents, gen, rows, batch.global_size)
        with model.placement.autocast():
            labels = captions(source.clips, batch.rows)
            cond = model.conditions(frames, features, labels, drop_image[rows], drop_text[rows], drop_audio[rows])
            prediction = model(noisy, timesteps, cond)
        weight = distributed.share_weight(batch.global_size) if data_parallel else 1.0
        return torch.nn.functional.mse_loss(prediction.float(), target.float()) * weight

    return loss


def train_adapter_stage(
    model: ASVAModel,
    clips: ClipSet,
    stage: StageConfig,
    diffusion: DiffusionConfig,
    seed: int,
    desc: str,
    data: DataConfig | None = None,
    checkpoint_path: Path | None = None,
    on_step: Callable[[int, float], None] | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
    metadata: dict | None = None,
    data_parallel: bool = False,
    failed: set[str] | None = None,
    cache_dir: Path | None = None,
) -> list[float]:
    """Train the adapters for one stage on `clips` (`adapter_loss`), read as `data` says (its defaults
    when None); returns the loss of every step. The clips that could not be read are added to `failed`.
    `cache_dir`: where the job's caches live, latents prepared by sweeps/prepare.py among them."""
    source = StageClips(model, clips, data or DataConfig(), cache_dir)
    losses = train_loop(
        model,
        model.adapter_parameters(),
        adapter_loss(model, source, diffusion, data_parallel),
        len(clips),
        LoopSpec(
            stage.lr,
            stage.batch_size,
            stage.steps,
            stage.epochs,
            stage.checkpoint_every,
            stage.lr_warmup_steps,
            stage.checkpoint_minutes,
        ),
        seed,
        desc=desc,
        checkpoint_path=checkpoint_path,
        state_dict=model.adapter_state_dict,
        load_state_dict=model.load_adapter_state_dict,
        on_step=on_step,
        on_checkpoint=on_checkpoint,
        metadata=metadata,
        data_parallel=data_parallel,
        batches=source.batches(stage.batch_size, seed, data_parallel),
    )
    if failed is not None:
        failed.update(source.failed)
    return losses
