"""Training videos read from their files when a batch asks for a clip: memory flat in the pool's size.

A `StreamedWindows` has the interface of `VideoWindows` (asva/data/windows.py) for the training
loader: rows of (file, span of it), and `clip(row, fraction)` decodes the clip that starts at
`fraction` of the row's allowed starts, seeking to it (asva/data/media.py `read_span`), so a VGGSound
row decodes only its labelled 10 s and a long video only its 2 s. Nothing is decoded up front: the
length of a row without an end is read from its file's headers when its first clip is drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from asva.data.media import media_seconds, read_span
from asva.errors import DataError


@dataclass
class StreamedWindows:
    paths: list[str]  # each row's video file
    span_start: list[float]  # where (s in the file) each row's clips may begin
    span_end: list[float | None]  # where they must end (None: the end of the file)
    clip_frames: int
    fps: int
    sample_rate: int
    frame_size: int

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def clip_seconds(self) -> float:
        return self.clip_frames / self.fps

    @property
    def has_choice(self) -> bool:
        """Whether a row may hold more than one clip: not known before its file is opened."""
        return True

    def subset(self, rows: list[int]) -> StreamedWindows:
        return replace(
            self,
            paths=[self.paths[i] for i in rows],
            span_start=[self.span_start[i] for i in rows],
            span_end=[self.span_end[i] for i in rows],
        )

    def _overlap(self, row: int, start_s: float, end_s: float) -> tuple[float, float]:
        end = self.span_end[row]
        return max(start_s, self.span_start[row]), end_s if end is None else min(end_s, end)

    def fits(self, row: int, start_s: float, end_s: float) -> bool:
        """Whether a whole clip of the row lies inside [start_s, end_s] (s in the file)."""
        first, last = self._overlap(row, start_s, end_s)
        return last - first >= self.clip_seconds - 1e-6

    def restrict(self, rows: list[int], spans: list[tuple[float, float]]) -> StreamedWindows:
        """The given rows, each narrowed to its span (s in the file), e.g. a curated segment."""
        narrowed = self.subset(rows)
        for position, (row, (start_s, end_s)) in enumerate(zip(rows, spans)):
            if not self.fits(row, start_s, end_s):
                raise ValueError(f"row {row}: no {self.clip_frames}-frame clip fits in [{start_s:g}, {end_s:g}] s")
            narrowed.span_start[position], narrowed.span_end[position] = self._overlap(row, start_s, end_s)
        return narrowed

    def start_seconds(self, row: int, fraction: float) -> float:
        """Where (s in the file) the row's clip at `fraction` in [0, 1) of its allowed starts begins
        (on the row's `fps` frame grid); DataError (naming the file) if no clip fits."""
        path, start = self.paths[row], self.span_start[row]
        allowed = self._frame_count(row) - self.clip_frames + 1
        if allowed < 1:
            raise DataError(f"{path}: shorter than the {self.clip_seconds:g} s clip requested from {start:g} s")
        return start + math.floor(fraction * allowed) / self.fps

    def _frame_count(self, row: int) -> int:
        """How many frames of the `fps` grid the row's span holds: to its end, or to the file's end
        (from the headers) when that comes first (a VGGSound row's 10 s may run past a short video)."""
        end = media_seconds(self.paths[row])
        if self.span_end[row] is not None:
            end = min(end, self.span_end[row])
        return math.floor((end - self.span_start[row]) * self.fps + 1e-3)

    def clip(self, row: int, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(frames [T, H, W, 3] uint8, audio [S]) of the row's clip at `fraction` in [0, 1) of its
        allowed starts (on the row's `fps` frame grid); DataError (naming the file) if unreadable."""
        first = self.start_seconds(row, fraction)
        clip = read_span(self.paths[row], self.fps, self.clip_seconds, self.frame_size, self.sample_rate, first)
        return torch.from_numpy(clip.frames), torch.from_numpy(clip.audio)

    def opening(self, row: int, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(first frame [1, H, W, 3] uint8, audio [S]) of the row's clip at `fraction`: what training
        still reads when the clip's latents come from a cache (asva/data/latent_cache.py). Only the
        video up to that frame is decoded."""
        first = self.start_seconds(row, fraction)
        clip = read_span(
            self.paths[row], self.fps, self.clip_seconds, self.frame_size, self.sample_rate, first, video_frames=1
        )
        return torch.from_numpy(clip.frames), torch.from_numpy(clip.audio)

    def video_frames(self, row: int) -> tuple[torch.Tensor, float]:
        """(every frame [n, H, W, 3] of the row's span on the `fps` grid, the time (s in the file) of
        the first): the frames every clip of the row is cut from. DataError (naming the file) if unreadable."""
        count, start = self._frame_count(row), self.span_start[row]
        if count < self.clip_frames:
            raise DataError(f"{self.paths[row]}: shorter than the {self.clip_seconds:g} s clip from {start:g} s")
        clip = read_span(self.paths[row], self.fps, count / self.fps, self.frame_size, self.sample_rate, start)
        return torch.from_numpy(clip.frames), start
