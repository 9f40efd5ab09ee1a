"""The evaluation protocol of the ASVA papers: which clips of a test video are compared, and how.

- Per test video, 3 clips of 2 s whose starts are evenly spaced over [0, duration - 2 s]
  (`numpy.linspace(0, duration - 2, 3)`, as the released evaluation samples them). A video no longer
  than one clip has a single distinct start; its coinciding clips are one clip, evaluated once.
- The first frame of each reference clip is the conditioning image, its audio the conditioning audio.
- Generated and reference clips are compared at 6 FPS: a 12-FPS clip keeps every other frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asva.config.schema import DataConfig
from asva.data.dataset import ClipSet, VideoEntry, decode_entries, read_event_times, read_lines
from asva.data.media import probe
from asva.errors import DataError

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


def evaluation_clips(
    root: str | Path, split: str, data: DataConfig, cache_dir: str | Path, count: int = CLIPS_PER_VIDEO
) -> ClipSet:
    """Every protocol clip of `split` under `root` (AVSync15 layout), decoded at data.fps and cached.

    Clip ids are `<video id>_clip-<i>`; event times (synthetic benchmark) are shifted to each clip.
    Undecodable or too short videos are skipped and named in `skipped`, as the dataset loader does.
    """
    root = Path(root)
    classes = read_lines(root / "classes.txt")
    split_file = root / f"{split}.txt"
    video_events = read_event_times(root)
    entries, skipped, events = [], [], {}
    for line in read_lines(split_file):
        label, video_id, path = line.split("/")[0], Path(line).stem, root / "videos" / line
        try:
            starts = clip_starts(probe(path).duration, data.clip_seconds, count)
        except DataError as error:
            skipped.append(str(error))
            continue
        for index, start in enumerate(starts):
            entries.append(VideoEntry(f"{video_id}_clip-{index}", label, path, start))
            events[entries[-1].video_id] = video_events.get(video_id, [])
    if not entries:
        raise DataError(f"{root}: no evaluation clip could be decoded from {split}.txt ({len(skipped)} skipped)")
    return decode_entries(
        f"{root.name}-{split}-protocol{count}", entries, classes, data, cache_dir, split_file, events, skipped
    )
