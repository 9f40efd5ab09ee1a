"""Where a job computes and in which precision: `train.device` and `train.precision`.

One `Placement` per job. The model moves to its device once (`place`); every batch moves there with
`to_device` (pinned host memory, non-blocking copies on CUDA); every forward pass runs under
`autocast()`. Under bf16-mixed the frozen parts are stored in bf16 (half the memory, the tensor
cores' input type) while the trainable adapters keep fp32 weights, so Adam updates full-precision
master weights and the autocast region casts them for the matmuls.

Random draws stay on the CPU generators of (seed, step) and are moved to the device, so a run draws
the same clips, dropout and noise on any device.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Placement:
    device: torch.device
    compute_dtype: torch.dtype | None  # torch.bfloat16 under bf16-mixed, None in fp32

    @property
    def mixed(self) -> bool:
        return self.compute_dtype is not None

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.mixed:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.compute_dtype)

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` on the device; a host tensor bound for CUDA goes through pinned memory, without
        blocking the host."""
        if tensor.device == self.device:
            return tensor
        if self.device.type == "cuda" and tensor.device.type == "cpu":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def place(self, model: nn.Module, trainable: list[nn.Module]) -> nn.Module:
        """Move `model` to the device; under bf16-mixed store it in bf16 except the `trainable` modules."""
        model.to(self.device)
        if self.mixed:
            model.to(self.compute_dtype)
            for module in trainable:
                module.float()
        return model


def resolve(device: str, precision: str) -> Placement:
    """The placement of `train.device` / `train.precision` (already validated); TF32 matmuls on CUDA."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if precision == "auto":
        precision = "bf16-mixed" if device == "cuda" else "fp32"
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    where = torch.device("cuda", torch.cuda.current_device()) if device == "cuda" else torch.device("cpu")
    return Placement(where, torch.bfloat16 if precision == "bf16-mixed" else None)


CPU_FP32 = Placement(torch.device("cpu"), None)
