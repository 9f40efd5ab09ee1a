"""Data-parallel glue: one process per GPU, started by torchrun or by SLURM (one task per GPU).

A job that finds more than one process in its environment joins a process group. `batch_size` is
the global batch: every rank draws the same batch indices, clip starts and noise, encodes and
denoises only its own rows, and the gradients are averaged across ranks, so N processes train like
one process with the same batch, on any N (a checkpoint resumes on another number of GPUs). Rank 0
alone writes checkpoints and talks to MLflow.
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist

DEFAULT_PORT = 29500


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: "gpu[03-05,9],cpu1" -> "gpu03"."""
    match = re.match(r"([^\[,]+)(?:\[([^\]]+)\])?", nodelist)
    if match is None:
        raise ValueError(f"unreadable SLURM node list {nodelist!r}")
    prefix, ranges = match.groups()
    if not ranges:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def world_from_env(env: dict[str, str] | None = None) -> World:
    """Rank and size from torchrun (RANK, WORLD_SIZE) or a multi-task SLURM step (SLURM_PROCID)."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" in env:
        return World(int(env.get("RANK", 0)), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env and "SLURM_STEP_ID" in env:
        return World(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)))
    return World(0, 1, 0)


def init(timeout_minutes: float = 360.0) -> World:
    """Join the process group when there is more than one process (idempotent); returns the world.

    `timeout_minutes` bounds every wait of one rank for another, the ranks that wait while rank 0
    prepares data and the frozen parts included: it must exceed the longest such preparation.
    """
    world = world_from_env()
    if world.size == 1 or dist.is_initialized():
        return current()
    if "MASTER_ADDR" not in os.environ:  # a SLURM step: rank 0 runs on the first node of the job
        os.environ["MASTER_ADDR"] = _first_host(os.environ.get("SLURM_JOB_NODELIST", "127.0.0.1"))
        job = int(os.environ.get("SLURM_JOB_ID", "0"))
        os.environ.setdefault("MASTER_PORT", str(DEFAULT_PORT + job % 10000))
    os.environ.setdefault("MASTER_PORT", str(DEFAULT_PORT))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group(
        backend, rank=world.rank, world_size=world.size, timeout=datetime.timedelta(minutes=timeout_minutes)
    )
    return world


def current() -> World:
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), world_from_env().local_rank)
    return World(0, 1, 0)


def local_rows(batch_size: int) -> slice:
    """This rank's contiguous share of a global batch of `batch_size` rows."""
    world = current()
    per_rank, extra = divmod(batch_size, world.size)
    start = world.rank * per_rank + min(world.rank, extra)
    return slice(start, start + per_rank + (world.rank < extra))


def share_weight(batch_size: int) -> float:
    """Scales a mean over this rank's rows so that averaging across ranks gives the global mean."""
    rows = local_rows(batch_size)
    return (rows.stop - rows.start) * current().size / batch_size


def average_gradients(parameters: list[torch.nn.Parameter]) -> None:
    world = current()
    if world.size == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for parameter, grad in zip(parameters, grads):
        parameter.grad = flat[offset : offset + grad.numel()].view_as(grad).clone()
        offset += grad.numel()


def collective_device() -> torch.device:
    """Where the process group's collectives take their tensors: NCCL's on this rank's GPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def mean_across_ranks(value: float) -> float:
    world = current()
    if world.size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=collective_device())
    dist.all_reduce(tensor)
    return float(tensor.item() / world.size)


def barrier() -> None:
    if current().size > 1:
        dist.barrier()


def broadcast_from_main(value: object) -> object:
    """Rank 0's `value` on every rank (a picklable object)."""
    if current().size == 1:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
