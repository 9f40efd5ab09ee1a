"""Training the audio adapters: one stage (pretraining on the pool, or finetuning on K shots)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from asva import distributed
from asva.config.schema import DiffusionConfig, StageConfig
from asva.data.audio import fbank
from asva.data.dataset import ClipSet
from asva.models.asva_model import ASVAModel, AudioFeatures
from asva.models.diffusion import drop_masks, noised_batch, training_scheduler
from asva.training.components import captions
from asva.training.loop import LoopSpec, train_loop


class StageClips:
    """What one stage trains on, batch by batch: (first-frame source frames, latents, audio features).

    A set that keeps whole videos with more than one clip to draw gives each video of a batch a new
    uniformly placed clip at every step, encoded by the frozen first stage and audio encoders then.
    Otherwise every video has one clip (the fixed clips, or the only clip a short video holds),
    encoded once up front.
    """

    def __init__(self, model: ASVAModel, clips: ClipSet, sample_rate: int):
        self.model, self.sample_rate = model, sample_rate
        self.placement = model.placement
        self.windows = clips.windows if clips.windows is not None and clips.windows.has_choice else None
        if self.windows is None:
            if clips.windows is not None:  # the only clip of each row (a curated span may have moved it)
                rows = torch.arange(len(clips))
                frames, audio = clips.windows.clips(rows, clips.windows.row_first)
                self.frames, bank = frames, fbank(audio, sample_rate)
            else:
                self.frames, audio, bank = clips.frames, clips.audio, clips.fbank
            self.frames = self.placement.to_device(self.frames)
            with torch.no_grad(), self.placement.autocast():
                self.latents = model.base.encode_video(self.frames)
                self.features = model.encode_audio(bank, audio, sample_rate)

    def batch(
        self, idx: torch.Tensor, generator: torch.Generator, rows: slice = slice(None)
    ) -> tuple[torch.Tensor, torch.Tensor, AudioFeatures]:
        """The `rows` of the batch of videos `idx`: clip starts are drawn for all of `idx` (the same
        draws on every data-parallel rank), but only the rows' clips are cut and encoded."""
        if self.windows is None:
            mine = idx[rows].to(self.placement.device)
            return self.frames[mine], self.latents[mine], self.features.select(mine)
        starts = self.windows.draw_starts(idx, generator)
        frames, audio = self.windows.clips(idx[rows], starts[rows])
        frames = self.placement.to_device(frames)
        with torch.no_grad(), self.placement.autocast():
            latents = self.model.base.encode_video(frames)
            features = self.model.encode_audio(fbank(audio, self.sample_rate), audio, self.sample_rate)
        return frames, latents, features


def adapter_loss(
    model: ASVAModel, clips: ClipSet, diffusion: DiffusionConfig, sample_rate: int = 16000, data_parallel: bool = False
) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """The loss of one step over the batch of videos `idx`: denoising with cond_drop independent
    image/text/audio dropout, on the model's device and precision; base and encoders frozen.

    With `data_parallel`, every rank draws the clip starts, dropout and noise of the whole global
    batch but encodes and denoises only its own rows (asva/distributed.py), so the ranks together
    compute the one-process step.
    """
    scheduler = training_scheduler(diffusion)
    source = StageClips(model, clips, sample_rate)

    def loss(idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        rows = distributed.local_rows(len(idx)) if data_parallel else slice(None)
        drop_image, drop_text, drop_audio = drop_masks(len(idx), diffusion.cond_drop, gen)
        frames, latents, features = source.batch(idx, gen, rows)
        noisy, timesteps, target = noised_batch(scheduler, latents, gen, rows, len(idx))
        with model.placement.autocast():
            cond = model.conditions(frames, features, captions(clips, idx[rows]), drop_image[rows], drop_text[rows], drop_audio[rows])
            prediction = model(noisy, timesteps, cond)
        weight = distributed.share_weight(len(idx)) if data_parallel else 1.0
        return torch.nn.functional.mse_loss(prediction.float(), target.float()) * weight

    return loss


def train_adapter_stage(
    model: ASVAModel,
    clips: ClipSet,
    stage: StageConfig,
    diffusion: DiffusionConfig,
    seed: int,
    desc: str,
    sample_rate: int = 16000,
    checkpoint_path: Path | None = None,
    on_step: Callable[[int, float], None] | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
    metadata: dict | None = None,
    data_parallel: bool = False,
) -> list[float]:
    """Train the adapters for one stage on `clips` (`adapter_loss`); returns the loss of every step."""
    return train_loop(
        model,
        model.adapter_parameters(),
        adapter_loss(model, clips, diffusion, sample_rate, data_parallel),
        len(clips),
        LoopSpec(stage.lr, stage.batch_size, stage.steps, stage.epochs, stage.checkpoint_every, stage.lr_warmup_steps,
                 stage.checkpoint_minutes),
        seed,
        desc=desc,
        checkpoint_path=checkpoint_path,
        state_dict=model.adapter_state_dict,
        load_state_dict=model.load_adapter_state_dict,
        on_step=on_step,
        on_checkpoint=on_checkpoint,
        metadata=metadata,
        data_parallel=data_parallel,
    )
