"""Whole decoded training videos, from which training draws a fresh 2-second clip at every step.

The papers train on "2-second clips sampled uniformly" from videos that are longer: every time a
video enters a batch, its clip starts at a new uniformly drawn time. A `VideoWindows` holds each
video's frames (on the `fps` grid) and sound back to back in two tensors, and rows that point into
them: a row is a video and the range of frames its clips may start at (a curated segment narrows
it). Several rows may share one video's frames. Clip starts fall on the frame grid, so a clip's
frames are a slice and its sound starts at the first frame's time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch


@dataclass
class VideoWindows:
    frames: torch.Tensor  # [all frames, H, W, 3] uint8: every video's frames, one after another
    audio: torch.Tensor  # [all samples] float32: every video's sound, one after another
    frame_offset: torch.Tensor  # [videos] where each video's first frame is in `frames`
    audio_offset: torch.Tensor  # [videos] where each video's first sample is in `audio`
    video_start: torch.Tensor  # [videos] float64: the time (s) in its file of each video's first frame
    row_video: torch.Tensor  # [rows] the video each row draws from
    row_first: torch.Tensor  # [rows] the first frame (of its video) a clip of the row may start at
    row_starts: torch.Tensor  # [rows] how many consecutive start frames the row allows (>= 1)
    clip_frames: int
    fps: int
    sample_rate: int

    @classmethod
    def from_videos(
        cls,
        frames: list[torch.Tensor],
        audio: list[torch.Tensor],
        starts: list[float],
        clip_frames: int,
        fps: int,
        sample_rate: int,
    ) -> VideoWindows:
        """One row per video (decoded from `starts` s of its file), free to start anywhere a clip fits."""
        lengths = torch.tensor([len(f) for f in frames])
        if (lengths < clip_frames).any():
            raise ValueError(f"every video needs at least {clip_frames} frames, got {lengths.min().item()}")
        # Clip and start sample counts are rounded separately: one spare sample keeps the last clip whole.
        audio = [torch.nn.functional.pad(a, (0, 1)) for a in audio]
        return cls(
            frames=torch.cat(frames),
            audio=torch.cat(audio),
            frame_offset=_offsets(lengths),
            audio_offset=_offsets(torch.tensor([len(a) for a in audio])),
            video_start=torch.tensor(starts, dtype=torch.float64),
            row_video=torch.arange(len(frames)),
            row_first=torch.zeros(len(frames), dtype=torch.long),
            row_starts=lengths - clip_frames + 1,
            clip_frames=clip_frames,
            fps=fps,
            sample_rate=sample_rate,
        )

    def __len__(self) -> int:
        return len(self.row_video)

    @property
    def clip_samples(self) -> int:
        return round(self.clip_frames * self.sample_rate / self.fps)

    @property
    def has_choice(self) -> bool:
        """Whether any row has more than one clip to draw (else every draw is the same clip)."""
        return bool((self.row_starts > 1).any())

    def _with_rows(self, video: torch.Tensor, first: torch.Tensor, starts: torch.Tensor) -> VideoWindows:
        return replace(self, row_video=video, row_first=first, row_starts=starts)  # the videos are shared

    def subset(self, rows: list[int]) -> VideoWindows:
        index = torch.as_tensor(rows, dtype=torch.long)
        return self._with_rows(self.row_video[index], self.row_first[index], self.row_starts[index])

    def _span_starts(self, row: int, start_s: float, end_s: float) -> tuple[int, int]:
        """(first, last) start frame of the row's clips lying inside [start_s, end_s] (s in the file)."""
        origin = float(self.video_start[self.row_video[row]])
        first = max(int(self.row_first[row]), math.ceil((start_s - origin) * self.fps - 1e-6))
        last = min(
            int(self.row_first[row] + self.row_starts[row] - 1),
            math.floor((end_s - origin) * self.fps + 1e-6) - self.clip_frames,
        )
        return first, last

    def fits(self, row: int, start_s: float, end_s: float) -> bool:
        """Whether a whole clip of the row lies inside [start_s, end_s] (s in the file)."""
        first, last = self._span_starts(row, start_s, end_s)
        return last >= first

    def restrict(self, rows: list[int], spans: list[tuple[float, float]]) -> VideoWindows:
        """The given rows, each narrowed to its span (s in the file), e.g. a curated segment.

        ValueError when no whole clip of a row fits in its span.
        """
        firsts, counts = [], []
        for row, (start_s, end_s) in zip(rows, spans):
            first, last = self._span_starts(row, start_s, end_s)
            if last < first:
                raise ValueError(f"row {row}: no {self.clip_frames}-frame clip fits in [{start_s:g}, {end_s:g}] s")
            firsts.append(first)
            counts.append(last - first + 1)
        index = torch.as_tensor(rows, dtype=torch.long)
        return self._with_rows(
            self.row_video[index], torch.tensor(firsts, dtype=torch.long), torch.tensor(counts, dtype=torch.long)
        )

    def starts_at(self, rows: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
        """The start frame (within its video) at `fractions` in [0, 1) of each row's allowed starts:
        a uniform fraction gives a uniformly placed clip (asva/data/loader.py draws them)."""
        return self.row_first[rows] + (fractions.double() * self.row_starts[rows]).long()

    def clip(self, row: int, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(frames [T, H, W, 3] uint8, audio [S]) of the row's clip at `fraction` of its allowed starts."""
        rows = torch.tensor([row])
        frames, audio = self.clips(rows, self.starts_at(rows, torch.tensor([fraction], dtype=torch.float64)))
        return frames[0], audio[0]

    def start_seconds(self, row: int, fraction: float) -> float:
        """Where (s in its file) the row's clip at `fraction` of its allowed starts begins."""
        start = int(self.starts_at(torch.tensor([row]), torch.tensor([fraction], dtype=torch.float64))[0])
        return float(self.video_start[self.row_video[row]]) + start / self.fps

    def opening(self, row: int, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(first frame [1, H, W, 3] uint8, audio [S]) of the row's clip at `fraction`: what training
        still reads when the clip's latents come from a cache (asva/data/latent_cache.py)."""
        rows = torch.tensor([row])
        start = self.starts_at(rows, torch.tensor([fraction], dtype=torch.float64))
        video = self.row_video[rows]
        first = self.frame_offset[video] + start
        samples = self.audio_offset[video] + torch.round(start * self.sample_rate / self.fps).long()
        return self.frames[first], self.audio[samples[0] : samples[0] + self.clip_samples]

    def video_frames(self, row: int) -> tuple[torch.Tensor, float]:
        """(every frame [n, H, W, 3] of the row's video, the time (s in its file) of the first)."""
        video = int(self.row_video[row])
        end = self.frame_offset[video + 1] if video + 1 < len(self.frame_offset) else len(self.frames)
        return self.frames[self.frame_offset[video] : end], float(self.video_start[video])

    def clips(self, rows: torch.Tensor, start_frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(frames [B, T, H, W, 3] uint8, audio [B, S]) of the clips of `rows` at `start_frames`."""
        videos = self.row_video[rows]
        first_frames = self.frame_offset[videos] + start_frames
        frame_index = first_frames[:, None] + torch.arange(self.clip_frames)
        first_samples = self.audio_offset[videos] + torch.round(start_frames * self.sample_rate / self.fps).long()
        sample_index = first_samples[:, None] + torch.arange(self.clip_samples)
        return self.frames[frame_index], self.audio[sample_index]


def concatenate_windows(first: VideoWindows, second: VideoWindows) -> VideoWindows:
    """The rows of both sets (same clip length, FPS and sample rate), their videos side by side."""
    if (first.clip_frames, first.fps, first.sample_rate) != (second.clip_frames, second.fps, second.sample_rate):
        raise ValueError("cannot concatenate windows decoded with different settings")
    return VideoWindows(
        frames=torch.cat([first.frames, second.frames]),
        audio=torch.cat([first.audio, second.audio]),
        frame_offset=torch.cat([first.frame_offset, second.frame_offset + len(first.frames)]),
        audio_offset=torch.cat([first.audio_offset, second.audio_offset + len(first.audio)]),
        video_start=torch.cat([first.video_start, second.video_start]),
        row_video=torch.cat([first.row_video, second.row_video + len(first.frame_offset)]),
        row_first=torch.cat([first.row_first, second.row_first]),
        row_starts=torch.cat([first.row_starts, second.row_starts]),
        clip_frames=first.clip_frames,
        fps=first.fps,
        sample_rate=first.sample_rate,
    )


def _offsets(lengths: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])
