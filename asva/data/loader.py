"""Training batches: which clips each step reads, and a torch DataLoader that reads them.

Every step's draws come from (seed, step) alone: the videos are consecutive slices of a per-epoch
permutation (`batch_indices`) and each video's clip start is a uniform fraction of its allowed
starts, from a generator of its own (`clip_fractions`). So a resumed run reads exactly the clips it
would have, whatever the number of workers or ranks. `StepDraws`, the DataLoader's batch sampler,
yields for each step this rank's share of the global batch (asva/distributed.py `local_rows`); the
workers decode those clips (`WindowClips`: from memory, or from the files with `StreamedWindows`)
and compute their filterbanks. A clip whose file cannot be read is left out of its batch and named
in `ClipBatch.failed`; the training loop logs it and goes on.

With a latent cache (asva/data/latent_cache.py, sweeps/prepare.py) a worker reads a clip's latents
from it and decodes only the clip's first frame (the image condition) and its sound; a clip the
cache lacks is decoded whole, for the first stage to encode on the fly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from asva import distributed
from asva.data.audio import fbank
from asva.data.latent_cache import CachedLatents
from asva.data.streaming import StreamedWindows
from asva.errors import DataError


def batch_indices(step: int, num_examples: int, batch_size: int, seed: int) -> torch.Tensor:
    """The examples of `step`: consecutive slices of a per-epoch permutation (last batch may be short)."""
    per_epoch = math.ceil(num_examples / batch_size)
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
    return order[position * batch_size : (position + 1) * batch_size]


def clip_fractions(step: int, count: int, seed: int) -> torch.Tensor:
    """Where in its allowed starts each of the step's `count` clips begins: uniform in [0, 1)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step + 500_000_000_000)
    return torch.rand(count, generator=generator, dtype=torch.float64)


@dataclass(frozen=True)
class Draw:
    row: int  # the dataset row (video)
    fraction: float  # where its clip starts, in [0, 1) of its allowed starts
    position: int  # its place in the step's global batch
    global_size: int  # how many rows the step's global batch has


@dataclass
class ClipBatch:
    """This rank's clips of one step: `rows` at `positions` of a global batch of `global_size`."""

    rows: torch.Tensor
    positions: torch.Tensor
    global_size: int
    # [b, T, H, W, 3] uint8 (None: the caller holds the clips); with `latents`, the first frames [b, 1, H, W, 3]
    frames: torch.Tensor | None = None
    audio: torch.Tensor | None = None  # [b, S]
    fbank: torch.Tensor | None = None  # [b, F, 128]
    failed: list[str] = field(default_factory=list)  # "path: reason" of the draws left out
    # From a latent cache: [b, C, T, h, w] (the cache's dtype); the rows `uncached` (batch positions)
    # are zeros there, their whole clips in `uncached_frames` [m, T, H, W, 3] for the first stage.
    latents: torch.Tensor | None = None
    uncached: torch.Tensor | None = None
    uncached_frames: torch.Tensor | None = None


class StepDraws(Sampler):
    """For each step from `first_step` to `total_steps`: this rank's draws of the global batch."""

    def __init__(
        self, num_rows: int, batch_size: int, seed: int, first_step: int, total_steps: int, data_parallel: bool
    ):
        self.num_rows, self.batch_size, self.seed = num_rows, batch_size, seed
        self.first_step, self.total_steps, self.data_parallel = first_step, total_steps, data_parallel

    def step_draws(self, step: int) -> list[Draw]:
        rows = batch_indices(step, self.num_rows, self.batch_size, self.seed)
        fractions = clip_fractions(step, len(rows), self.seed)
        mine = range(len(rows))[distributed.local_rows(len(rows))] if self.data_parallel else range(len(rows))
        return [Draw(int(rows[p]), float(fractions[p]), p, len(rows)) for p in mine]

    def __iter__(self) -> Iterator[list[Draw]]:
        for step in range(self.first_step, self.total_steps):
            yield self.step_draws(step)

    def __len__(self) -> int:
        return self.total_steps - self.first_step


class WindowClips(Dataset):
    """Clips of a `VideoWindows` or `StreamedWindows`, item = a `Draw`, with their filterbanks; with
    `latents`, a cached clip comes as its latents and first frame."""

    def __init__(self, windows, sample_rate: int, latents: CachedLatents | None = None):
        self.windows, self.sample_rate, self.latents = windows, sample_rate, latents

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, draw: Draw) -> dict:
        item = {"draw": draw}
        try:
            cached = None
            if self.latents is not None:
                cached = self.latents.clip(draw.row, self.windows.start_seconds(draw.row, draw.fraction))
            if cached is None:
                frames, audio = self.windows.clip(draw.row, draw.fraction)
            else:
                frames, audio = self.windows.opening(draw.row, draw.fraction)
                item["latents"] = cached
        except DataError as error:
            return {"draw": draw, "failed": str(error)}
        return {**item, "frames": frames, "audio": audio, "fbank": fbank(audio[None], self.sample_rate)[0]}


def collate(items: list[dict]) -> ClipBatch:
    """One batch of `WindowClips` items (or of bare draws, {"draw": ...}, for clips held elsewhere)."""
    read = [item for item in items if "failed" not in item]
    draws = [item["draw"] for item in read]
    cached = [position for position, item in enumerate(read) if "latents" in item]

    def stacked(name: str) -> torch.Tensor | None:
        return torch.stack([item[name] for item in read]) if read and name in read[0] else None

    batch = ClipBatch(
        rows=torch.tensor([d.row for d in draws], dtype=torch.long),
        positions=torch.tensor([d.position for d in draws], dtype=torch.long),
        global_size=items[0]["draw"].global_size if items else 0,
        frames=stacked("frames") if not cached else torch.stack([item["frames"][:1] for item in read]),
        audio=stacked("audio"),
        fbank=stacked("fbank"),
        failed=[item["failed"] for item in items if "failed" in item],
    )
    if cached:  # first frames only (above); whole clips where the cache had none
        shape = read[cached[0]]["latents"].shape
        batch.latents = read[cached[0]]["latents"].new_zeros(len(read), *shape)
        batch.latents[cached] = torch.stack([read[position]["latents"] for position in cached])
        uncached = [position for position, item in enumerate(read) if "latents" not in item]
        if uncached:
            batch.uncached = torch.tensor(uncached, dtype=torch.long)
            batch.uncached_frames = torch.stack([read[position]["frames"] for position in uncached])
    return batch


def one_thread_per_worker(_: int) -> None:
    torch.set_num_threads(1)  # a worker decodes one clip at a time; the cores belong to the workers


def clip_loader(
    windows,
    sample_rate: int,
    draws: StepDraws,
    workers: int,
    prefetch_factor: int,
    pin_memory: bool,
    latents: CachedLatents | None = None,
) -> DataLoader:
    """The DataLoader over `draws` (one batch per step). Clips in memory are read in this process;
    streamed ones by `workers` processes that keep running across the stage's steps. With `latents`,
    cached clips come as latents (`WindowClips`)."""
    workers = workers if isinstance(windows, StreamedWindows) else 0
    return DataLoader(
        WindowClips(windows, sample_rate, latents),
        batch_sampler=draws,
        collate_fn=collate,
        num_workers=workers,
        prefetch_factor=prefetch_factor if workers else None,
        persistent_workers=workers > 0,
        pin_memory=pin_memory,
        worker_init_fn=one_thread_per_worker if workers else None,
    )
