"""The training loop, shared by every stage (stand-in encoders, the base, the audio adapters).

Everything random is derived from (seed, step), so a run killed at any point and restarted from
its last checkpoint continues with exactly the batches and noise it would have drawn. The
checkpoint holds everything else a continuation needs: the trained weights, the optimizer and
learning-rate schedule, the global RNG states (torch, numpy, python), the sampler position and
the caller's metadata (the job's MLflow run id). Checkpoints are written atomically.

With `data_parallel`, every rank draws the same global batch of `batch_size` rows (whatever the
number of ranks), computes its own rows' share of the loss, and the gradients are averaged across
ranks (asva/distributed.py); rank 0 alone writes checkpoints.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from asva import distributed
from asva.data.loader import batch_indices
from asva.errors import DataError
from asva.files import load_torch, save_torch
from asva.progress import progress as progress_counter
from asva.training.preemption import SignalsHeldUntilStepEnd

BatchLoss = Callable[[Any, torch.Generator], torch.Tensor]
# (first step, total steps) -> the batches of those steps, in order.
Batches = Callable[[int, int], Iterable[Any]]


@dataclass
class LoopSpec:
    lr: float
    batch_size: int
    steps: int | None = None
    epochs: int | None = None
    checkpoint_every: int = 100
    warmup_steps: int = 0  # linear learning-rate warm-up from 0, then constant
    checkpoint_minutes: float | None = None  # also save once this much wall time passed since the last save
    # None: Adam without weight decay (every stage of the project). A value: AdamW with this decoupled
    # weight decay (AVSyncD's classifier recipe); AdamW's other defaults are the release's (betas 0.9,
    # 0.999, eps 1e-8).
    weight_decay: float | None = None
    # Clip the gradients of `parameters` to this global L2 norm before each step (after averaging
    # across ranks); None: no clipping.
    max_grad_norm: float | None = None

    def total_steps(self, num_examples: int) -> int:
        if self.steps is not None:
            return self.steps
        return self.epochs * math.ceil(num_examples / self.batch_size)


def sampler_position(step: int, num_examples: int, batch_size: int) -> dict[str, int]:
    epoch, batch = divmod(step, math.ceil(num_examples / batch_size))
    return {"epoch": epoch, "batch": batch, "num_examples": num_examples, "batch_size": batch_size}


def rng_states() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])


def make_optimizer(parameters: list[torch.nn.Parameter], spec: LoopSpec) -> torch.optim.Optimizer:
    """Adam, or AdamW when the spec names a weight decay."""
    if spec.weight_decay is None:
        return torch.optim.Adam(parameters, lr=spec.lr)
    return torch.optim.AdamW(parameters, lr=spec.lr, weight_decay=spec.weight_decay)


def read_checkpoint_metadata(path: Path) -> dict[str, Any]:
    """The metadata a training checkpoint was saved with ({} when there is no checkpoint)."""
    return load_torch(path).get("metadata", {}) if path.exists() else {}


def train_loop(
    module: torch.nn.Module,
    parameters: list[torch.nn.Parameter],
    batch_loss: BatchLoss,
    num_examples: int,
    spec: LoopSpec,
    seed: int,
    desc: str,
    checkpoint_path: Path | None = None,
    state_dict: Callable[[], dict] | None = None,
    load_state_dict: Callable[[dict], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
    metadata: dict[str, Any] | None = None,
    data_parallel: bool = False,
    batches: Batches | None = None,
) -> list[float]:
    """Adam (AdamW with `spec.weight_decay`) over `parameters` for the spec's steps, the gradients
    clipped to `spec.max_grad_norm` when it is set; returns the loss of every step.

    With a checkpoint path, saves the full training state every `checkpoint_every` steps, every
    `checkpoint_minutes` of wall time, at the end, and at the end of the step during which the job
    was told to stop (SIGUSR2 or SIGTERM: SLURM's preemption and time-out), and resumes from it when
    it exists. `on_checkpoint(step)` runs just before each save
    (to flush what the caller logged up to that step); `metadata` is stored in every checkpoint.
    `batch_size` is the global batch, with `data_parallel` too: the steps, the schedule and the rows
    each step sees do not depend on the number of ranks. `batch_loss(batch, generator)` gets each
    step's batch from `batches` (e.g. a DataLoader of clips, asva/data/loader.py), by default the
    indices of its examples (`batch_indices`).
    """
    state_dict = state_dict or module.state_dict
    load_state_dict = load_state_dict or module.load_state_dict
    world = distributed.current() if data_parallel else distributed.World(0, 1, 0)
    optimizer = make_optimizer(parameters, spec)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / spec.warmup_steps) if spec.warmup_steps else 1.0
    )
    total = spec.total_steps(num_examples)
    losses: list[float] = []
    start = 0
    saved_step = None  # the step of the checkpoint on disk
    if checkpoint_path is not None and checkpoint_path.exists():
        saved = load_torch(checkpoint_path)
        expected = sampler_position(saved["step"], num_examples, spec.batch_size)
        if saved["sampler"] != expected:
            raise DataError(
                f"{checkpoint_path}: saved for {saved['sampler']['num_examples']} examples in batches of "
                f"{saved['sampler']['batch_size']}, this run has {num_examples} in batches of {spec.batch_size}"
            )
        load_state_dict(saved["weights"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["scheduler"])
        set_rng_states(saved["rng"])
        losses, start = saved["losses"], saved["step"]
        saved_step = start

    def save(step: int) -> None:
        nonlocal saved_step
        if checkpoint_path is None or not world.is_main:
            return
        saved_step = step
        if on_checkpoint is not None:
            on_checkpoint(step)
        save_torch(
            checkpoint_path,
            {
                "weights": state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": schedule.state_dict(),
                "rng": rng_states(),
                "sampler": sampler_position(step, num_examples, spec.batch_size),
                "step": step,
                "losses": losses,
                "metadata": dict(metadata or {}),
            },
        )

    module.train()
    progress = progress_counter(range(start, total), desc=desc, unit="step", initial=start, total=total)
    last_saved = time.monotonic()
    if batches is None:
        steps_batches = (batch_indices(step, num_examples, spec.batch_size, seed) for step in range(start, total))
    else:
        steps_batches = batches(start, total)
    with SignalsHeldUntilStepEnd() as stop_signals:
        for step, batch in zip(progress, steps_batches):
            torch.manual_seed(seed * 7919 + step)  # for any op that draws from the global generator
            random.seed(seed * 7919 + step)
            np.random.seed((seed * 7919 + step) % 2**32)
            generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
            loss = batch_loss(batch, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if data_parallel:
                distributed.average_gradients(parameters)
            if spec.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(parameters, spec.max_grad_norm)
            optimizer.step()
            schedule.step()
            losses.append(distributed.mean_across_ranks(loss.item()) if data_parallel else loss.item())
            progress.set_postfix(loss=f"{losses[-1]:.4f}")
            if on_step is not None and world.is_main:
                on_step(step, losses[-1])
            overdue = (
                spec.checkpoint_minutes is not None and time.monotonic() - last_saved >= 60 * spec.checkpoint_minutes
            )
            if (step + 1) % spec.checkpoint_every == 0 or overdue or stop_signals.pending:
                save(step + 1)
                last_saved = time.monotonic()
            stop_signals.deliver()
    if saved_step != total:
        save(total)
    module.eval()
    return losses
