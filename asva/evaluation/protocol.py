"""The evaluation protocol of the ASVA papers: which clips of a test video are compared, and how.

- Per test video, 3 clips of 2 s whose starts are evenly spaced over [0, duration - 2 s]
  (`numpy.linspace(0, duration - 2, 3)`, as the released evaluation samples them). A video no longer
  than one clip has a single distinct start; its coinciding clips are one clip, evaluated once.
- The first frame of each reference clip is the conditioning image, its audio the conditioning audio.
- Generated and reference clips are compared at 6 FPS: a 12-FPS clip keeps every other frame.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from asva.config.schema import DataConfig
from asva.data.dataset import ClipSet
from asva.data.media import probe, read_clip
from asva.errors import DataError
from asva.progress import progress

EVAL_FPS = 6
CLIPS_PER_VIDEO = 3


def clip_starts(duration: float, clip_seconds: float = 2.0, count: int = CLIPS_PER_VIDEO) -> list[float]:
    """Distinct starts (s) of `count` clips evenly spaced over [0, duration - clip_seconds]."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    room = duration - clip_seconds
    if room < -1e-3:
        raise DataError(f"a {duration:.3f} s video is shorter than one {clip_seconds:g} s clip")
    starts = np.linspace(0.0, max(room, 0.0), count)
    return sorted({round(float(s), 3) for s in starts})


def at_eval_fps(frames: np.ndarray, fps: int, eval_fps: int = EVAL_FPS) -> np.ndarray:
    """[N, T, H, W, 3] at `fps` -> at `eval_fps` by keeping every (fps / eval_fps)-th frame."""
    if fps % eval_fps:
        raise ValueError(f"cannot compare {fps}-FPS clips at {eval_fps} FPS by dropping frames")
    return frames[:, :: fps // eval_fps]


def _events(root: Path) -> dict[str, list[float]]:
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        return {}
    with open(manifest, newline="") as handle:
        return {row["video_id"]: [float(t) for t in row["event_times"].split()] for row in csv.DictReader(handle)}


def evaluation_clips(root: str | Path, split: str, data: DataConfig, count: int = CLIPS_PER_VIDEO) -> ClipSet:
    """Every protocol clip of `split` under `root` (AVSync15 layout), decoded at data.fps.

    Clip ids are `<video id>_clip-<i>`; event times (synthetic benchmark) are shifted to each clip.
    Undecodable or too short videos are skipped and named in `skipped`, as the dataset loader does.
    """
    root = Path(root)
    classes = [line.strip() for line in (root / "classes.txt").read_text().splitlines() if line.strip()]
    entries = [line.strip() for line in (root / f"{split}.txt").read_text().splitlines() if line.strip()]
    events = _events(root)
    ids, labels, frames, audio, event_times, skipped = [], [], [], [], [], []
    for entry in progress(entries, desc=f"decoding evaluation clips of {root.name}/{split}", unit="video"):
        label, video_id, path = entry.split("/")[0], Path(entry).stem, root / "videos" / entry
        try:
            starts = clip_starts(probe(path).duration, data.clip_seconds, count)
            clips = [read_clip(path, data.fps, data.clip_seconds, data.frame_size, data.sample_rate, start=s) for s in starts]
        except DataError as error:
            skipped.append(str(error))
            continue
        for index, (start, clip) in enumerate(zip(starts, clips)):
            ids.append(f"{video_id}_clip-{index}")
            labels.append(label)
            frames.append(torch.from_numpy(clip.frames))
            audio.append(torch.from_numpy(clip.audio))
            event_times.append([t - start for t in events.get(video_id, []) if 0 <= t - start < data.clip_seconds])
    if not ids:
        raise DataError(f"{root}: no evaluation clip could be decoded from {split}.txt ({len(skipped)} skipped)")
    return ClipSet.from_decoded(ids, labels, frames, audio, event_times, classes, skipped, data.sample_rate)
