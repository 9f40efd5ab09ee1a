"""Training the audio adapters: one stage (pretraining on the pool, or finetuning on K shots)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from asva import distributed
from asva.config.schema import DiffusionConfig, StageConfig
from asva.data.dataset import ClipSet
from asva.models.asva_model import ASVAModel, AudioFeatures
from asva.models.diffusion import drop_masks, noised_batch, training_scheduler
from asva.training.components import captions
from asva.training.loop import LoopSpec, train_loop


def train_adapter_stage(
    model: ASVAModel,
    clips: ClipSet,
    features: AudioFeatures,
    stage: StageConfig,
    diffusion: DiffusionConfig,
    seed: int,
    desc: str,
    checkpoint_path: Path | None = None,
    on_step: Callable[[int, float], None] | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
    metadata: dict | None = None,
    data_parallel: bool = False,
) -> list[float]:
    """Denoising loss with 5% (cond_drop) independent image/text/audio dropout; base and encoders frozen.

    With `data_parallel`, every rank draws the noise of the whole global batch and runs the model on
    its own rows only (asva/distributed.py), so the ranks together compute the one-process step.
    """
    scheduler = training_scheduler(diffusion)
    with torch.no_grad():
        latents = model.base.encode_video(clips.frames)

    def loss(idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        drop_image, drop_text, drop_audio = drop_masks(len(idx), diffusion.cond_drop, gen)
        noisy, timesteps, target = noised_batch(scheduler, latents[idx], gen)
        if not data_parallel:
            cond = model.conditions(clips.frames[idx], features.select(idx), captions(clips, idx), drop_image, drop_text, drop_audio)
            return torch.nn.functional.mse_loss(model(noisy, timesteps, cond), target)
        rows = distributed.local_rows(len(idx))
        mine = idx[rows]
        cond = model.conditions(clips.frames[mine], features.select(mine), captions(clips, mine), drop_image[rows], drop_text[rows], drop_audio[rows])
        prediction = model(noisy[rows], timesteps[rows], cond)
        return torch.nn.functional.mse_loss(prediction, target[rows]) * distributed.share_weight(len(idx))

    return train_loop(
        model,
        model.adapter_parameters(),
        loss,
        len(clips),
        LoopSpec(stage.lr, stage.batch_size, stage.steps, stage.epochs, stage.checkpoint_every, stage.lr_warmup_steps),
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
