"""The training loop, shared by every stage (stand-in encoders, the base, the audio adapters).

Everything random is derived from (seed, step), so a run killed at any point and restarted from
its last checkpoint continues with exactly the batches and noise it would have drawn.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from asva.progress import progress as progress_counter

from asva.training.checkpoint import load_checkpoint, save_checkpoint

BatchLoss = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class LoopSpec:
    lr: float
    batch_size: int
    steps: int | None = None
    epochs: int | None = None
    checkpoint_every: int = 100

    def total_steps(self, num_examples: int) -> int:
        if self.steps is not None:
            return self.steps
        return self.epochs * math.ceil(num_examples / self.batch_size)


def batch_indices(step: int, num_examples: int, batch_size: int, seed: int) -> torch.Tensor:
    """The examples of `step`: consecutive slices of a per-epoch permutation (last batch may be short)."""
    per_epoch = math.ceil(num_examples / batch_size)
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
    return order[position * batch_size : (position + 1) * batch_size]


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
) -> list[float]:
    """Adam over `parameters` for the spec's steps; returns the loss of every step.

    With a checkpoint path, saves (weights, optimizer, step, losses) every `checkpoint_every`
    steps and at the end, and resumes from it when it exists.
    """
    state_dict = state_dict or module.state_dict
    load_state_dict = load_state_dict or module.load_state_dict
    optimizer = torch.optim.Adam(parameters, lr=spec.lr)
    total = spec.total_steps(num_examples)
    losses: list[float] = []
    start = 0
    if checkpoint_path is not None and checkpoint_path.exists():
        saved = load_checkpoint(checkpoint_path)
        load_state_dict(saved["weights"])
        optimizer.load_state_dict(saved["optimizer"])
        losses, start = saved["losses"], saved["step"]

    def save(step: int) -> None:
        if checkpoint_path is not None:
            save_checkpoint(
                checkpoint_path,
                {"weights": state_dict(), "optimizer": optimizer.state_dict(), "step": step, "losses": losses},
            )

    module.train()
    progress = progress_counter(range(start, total), desc=desc, unit="step", initial=start, total=total)
    for step in progress:
        torch.manual_seed(seed * 7919 + step)  # for any op that draws from the global generator
        random.seed(seed * 7919 + step)
        np.random.seed((seed * 7919 + step) % 2**32)
        generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
        loss = batch_loss(batch_indices(step, num_examples, spec.batch_size, seed), generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        progress.set_postfix(loss=f"{losses[-1]:.4f}")
        if on_step is not None:
            on_step(step, losses[-1])
        if (step + 1) % spec.checkpoint_every == 0:
            save(step + 1)
    save(total)
    module.eval()
    return losses
