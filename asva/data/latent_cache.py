"""Frozen first-stage latents of every training video, encoded once (sweeps/prepare.py) and read by every job.

The first stage never trains, so the latents of a video's frames are the same in every job that
trains on that video: `sweeps/prepare.py` (asva/prepare_job.py) encodes each frame once, and
training reads the latents of each drawn clip instead of running the VAE on its frames. A cache
lives in `paths.cache_dir/latents/<key>/`, the key hashing the set's manifest identity
(`ClipSet.source`: its files, spans and decoding settings) and the first stage's weights as the job
holds them (`first_stage_key`: device-independent, but bf16 weights are other weights than fp32):

    settings.json                  what the folder holds (set, first stage, shards, dtype, fps)
    shard-00003-of-00008.npy       latents [frames, C, h, w] of the shard's videos, one after another
    shard-00003-of-00008.json      its index, written last (a shard with one is done): per video its
                                   id, file, the time (s in the file) of its first frame, its frame
                                   count and its first row in the .npy

A video's frames are those of its span on the `data.fps` grid, the grid training draws clip starts
on, so the latents of a clip starting k frames into the span are rows k .. k + T - 1 of its video.
A clip whose start is not on the cached grid or whose video is not in the cache (a shard not
prepared yet, a file that failed to decode) is encoded on the fly.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from asva.config.hashing import stable_hash
from asva.files import partial_path

if TYPE_CHECKING:
    from asva.data.dataset import ClipSet

FOLDER = "latents"
SETTINGS = "settings.json"
FORMAT_VERSION = 1
# The .npy header is written before the frame count is known and rewritten in place at the end:
# this many bytes hold numpy's version-1.0 header of any shape.
NPY_HEADER_BYTES = 128


def first_stage_key(first_stage: nn.Module) -> str:
    """Identifies the first stage by its weights (names, dtypes, shapes, bytes) and settings (the
    latent scale of the VAE): two jobs whose latents would differ never share a cache."""
    digest = hashlib.sha256(type(first_stage).__name__.encode())
    settings = {
        k: v
        for k, v in vars(first_stage).items()
        if not k.startswith("_") and k != "training" and isinstance(v, (int, float, str))
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for name, tensor in sorted(first_stage.state_dict().items()):
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:16]


def cache_folder(cache_dir: str | Path, source: str, stage_key: str) -> Path:
    return Path(cache_dir) / FOLDER / stable_hash(source, stage_key, FORMAT_VERSION)


def shard_stem(shard: int, shards: int) -> str:
    return f"shard-{shard:05d}-of-{shards:05d}"


def video_key(video_id: str, path: str) -> str:
    """How the cache names a video: its id and file."""
    return f"{video_id}\t{path}"


def row_videos(clips: ClipSet) -> list[tuple[str, str]]:
    """(id, file) of each row's video, the file as an absolute path (a job may name its folder otherwise)."""
    paths = [os.path.abspath(path) for path in clips.paths] if clips.paths else [""] * len(clips)
    return list(zip(clips.video_ids, paths))


class NpyAppender:
    """A .npy file of [frames, *frame_shape] written frame block by frame block, never held in memory:
    written beside `path` (asva/files.py `partial_path`), its header completed and the file renamed
    over `path` by `close`."""

    def __init__(self, path: Path, frame_shape: tuple[int, ...], dtype: np.dtype):
        self.path, self.frame_shape, self.dtype = path, tuple(frame_shape), np.dtype(dtype)
        self.partial = partial_path(path)
        self.handle = open(self.partial, "wb")
        self.handle.write(npy_header((0, *self.frame_shape), self.dtype))
        self.frames = 0

    def append(self, block: np.ndarray) -> int:
        """Write `block` [n, *frame_shape]; returns the row its first frame has in the file."""
        if tuple(block.shape[1:]) != self.frame_shape:
            raise ValueError(f"latents of shape {tuple(block.shape[1:])} in a file of {self.frame_shape}")
        first = self.frames
        self.handle.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())
        self.frames += len(block)
        return first

    def close(self) -> None:
        self.handle.seek(0)
        self.handle.write(npy_header((self.frames, *self.frame_shape), self.dtype))
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        self.partial.replace(self.path)


def npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """numpy's format-1.0 header of an array of `shape`, padded to NPY_HEADER_BYTES."""
    text = repr({"descr": np.dtype(dtype).str, "fortran_order": False, "shape": tuple(shape)})
    body = text.ljust(NPY_HEADER_BYTES - 10 - 1) + "\n"  # magic (6) + version (2) + length (2) before it
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body.encode("latin1")


@dataclass
class CachedLatents:
    """Where each row of a training set finds its video's latents (shard -1: not cached)."""

    files: list[str]  # each shard's .npy
    shard: np.ndarray  # [rows] int
    offset: np.ndarray  # [rows] the first row of the video's latents in its shard
    start: np.ndarray  # [rows] float64: the time (s in its file) of the video's first cached frame
    frames: np.ndarray  # [rows] how many frames of the video are cached
    fps: int
    clip_frames: int
    _arrays: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # opened on first read

    @property
    def rows_found(self) -> int:
        return int((self.shard >= 0).sum())

    def clip(self, row: int, start_seconds: float) -> torch.Tensor | None:
        """Latents [C, T, h, w] of the row's clip starting at `start_seconds` (s in its file), or None
        when they are not cached (the video, or a start off the cached frame grid)."""
        shard = int(self.shard[row])
        if shard < 0:
            return None
        position = (start_seconds - float(self.start[row])) * self.fps
        first = round(position)
        if abs(position - first) > 1e-3 or first < 0 or first + self.clip_frames > int(self.frames[row]):
            return None
        if shard not in self._arrays:  # memory-mapped: a worker reads only the clips it is given
            self._arrays[shard] = np.load(self.files[shard], mmap_mode="r")
        begin = int(self.offset[row]) + first
        block = np.array(self._arrays[shard][begin : begin + self.clip_frames])
        return torch.from_numpy(block).transpose(0, 1).contiguous()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_arrays": {}}  # DataLoader workers open their own maps


def read_settings(folder: Path) -> dict | None:
    path = folder / SETTINGS
    return json.loads(path.read_text()) if path.is_file() else None


def open_cache(
    cache_dir: str | Path, clips: ClipSet, first_stage: nn.Module, clip_frames: int
) -> tuple[CachedLatents | None, str]:
    """(the cached latents of the rows of `clips`, or None; a sentence saying which)."""
    if not clips.source:
        return None, "the set has no manifest identity (made in memory): no latent cache applies"
    folder = cache_folder(cache_dir, clips.source, first_stage_key(first_stage))
    settings = read_settings(folder)
    if settings is None:
        return None, f"no latent cache for this set and first stage ({folder} is absent; sweeps/prepare.py makes it)"
    shards = settings["shards"]
    done = [shard for shard in range(shards) if (folder / f"{shard_stem(shard, shards)}.json").is_file()]
    where: dict[str, tuple[int, int, float, int]] = {}
    for shard in done:
        index = json.loads((folder / f"{shard_stem(shard, shards)}.json").read_text())
        for video in index["videos"]:
            place = (shard, video["offset"], video["start"], video["frames"])
            where.setdefault(video_key(video["video_id"], video["path"]), place)
    found = [where.get(video_key(*video), (-1, 0, 0.0, 0)) for video in row_videos(clips)]
    latents = CachedLatents(
        files=[str(folder / f"{shard_stem(shard, shards)}.npy") for shard in range(shards)],
        shard=np.array([f[0] for f in found], dtype=np.int64),
        offset=np.array([f[1] for f in found], dtype=np.int64),
        start=np.array([f[2] for f in found], dtype=np.float64),
        frames=np.array([f[3] for f in found], dtype=np.int64),
        fps=settings["fps"],
        clip_frames=clip_frames,
    )
    state = f"{len(done)} of {shards} shards prepared, {settings['dtype']}"
    if latents.rows_found == 0:
        return None, f"the latent cache {folder} holds none of the set's {len(clips)} videos ({state})"
    return latents, (
        f"latents of {latents.rows_found} of {len(clips)} videos read from the cache {folder} ({state}); "
        "the first stage encodes only the clips it lacks"
    )
