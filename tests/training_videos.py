"""Training videos whose pictures and sound say when they were shown (tests of clip drawing and decoding)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asva.data.media import write_video

SECONDS, SOURCE_FPS = 8.0, 12
TRAIN = ["dog/v0.mp4", "dog/v1.mp4", "dog/v2.mp4", "cat/short.mp4"]
STEREO_48K = "dog/v1.mp4"  # its sound is 48 kHz stereo: decoding resamples and mixes it down


def time_coded_frames(seconds: float, fps: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Frames whose brightness is 20 x their time (s): the picture says when it was shown."""
    count = round(seconds * fps)
    frames = np.zeros((count, height, width, 3), dtype=np.uint8)
    for index in range(count):
        frames[index] = min(255, round(20 * index / fps))
    return frames


def ramp_tone(seconds: float, rate: int = 16000) -> np.ndarray:
    """A 440 Hz tone whose amplitude is 0.05 x (1 + t): the sound says when it was played."""
    t = np.arange(round(seconds * rate)) / rate
    return (0.05 * (1 + t) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def write_training_videos(root: Path) -> Path:
    """Three 8-s training videos and one 2-s one (cat/short.mp4) in the AVSync15 layout, at 12 FPS."""
    (root / "classes.txt").write_text("dog\ncat\n")
    (root / "train.txt").write_text("\n".join(TRAIN) + "\n")
    (root / "test.txt").write_text("dog/v0.mp4\n")
    for entry in TRAIN:
        seconds = 2.0 if "short" in entry else SECONDS
        frames = time_coded_frames(seconds, SOURCE_FPS)
        if entry == STEREO_48K:
            tone = ramp_tone(seconds, 48000)
            write_video(root / "videos" / entry, frames, SOURCE_FPS, np.stack([tone, 0.5 * tone]), 48000)
        else:
            write_video(root / "videos" / entry, frames, SOURCE_FPS, ramp_tone(seconds))
    return root
