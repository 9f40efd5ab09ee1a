"""Checkpoint files, written atomically: a killed writer never leaves a half-written checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch
from filelock import FileLock


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with open(tmp, "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def build_once(path: Path, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Load `path`, or build and save it; concurrent jobs wait for the one that builds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.exists():
            return load_checkpoint(path)
        payload = build()
        save_checkpoint(path, payload)
        return payload
