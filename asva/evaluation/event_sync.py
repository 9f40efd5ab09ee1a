"""EventSync (synthetic): do the generated motion onsets fall on the frames where the sounds are?

Only the embedded benchmark has exact event times, so this metric exists only there and is named
apart from the papers' RelSync/AlignSync. Every synthetic event lights its object up, so per clip:
find the frames where the picture brightens abruptly (local maxima of the mean positive
grey-level change, above a floor and above half the clip's largest one; the fading afterwards
only darkens and is not mistaken for an onset), match them to the ground-truth event frames (the first frame at or after
each sound, within a tolerance of +-`tolerance` frames), and score the F1 of that matching. The
score is the mean F1 over clips, x100. A still video detects nothing and scores 0.
"""

from __future__ import annotations

import math

import numpy as np

# Mean brightening (grey levels, 0-255) that counts at all: above compression and sampling noise.
MIN_ONSET_ENERGY = 1.5
RELATIVE_ONSET_ENERGY = 0.5


def onset_energy(frames: np.ndarray) -> np.ndarray:
    """[T, H, W, 3] uint8 -> [T-1]: energy[i] is how much frame i+1 brightens over frame i."""
    grey = frames.astype(np.float32).mean(axis=-1)
    return np.clip(np.diff(grey, axis=0), 0, None).mean(axis=(1, 2))


def detect_onsets(frames: np.ndarray) -> list[int]:
    """Frames (index >= 1) that begin with an abrupt brightening: local maxima of onset energy."""
    energy = onset_energy(frames)
    if len(energy) == 0 or energy.max() < MIN_ONSET_ENERGY:
        return []
    floor = max(MIN_ONSET_ENERGY, RELATIVE_ONSET_ENERGY * float(energy.max()))
    padded = np.concatenate([[-np.inf], energy, [-np.inf]])
    onsets = []
    for i in range(len(energy)):
        value = padded[i + 1]
        if value >= floor and value >= padded[i] and value > padded[i + 2]:
            onsets.append(i + 1)
    return onsets


def event_frames(event_times: list[float], fps: float, num_frames: int) -> list[int]:
    """The first frame at or after each event."""
    frames = [math.ceil(t * fps - 1e-6) for t in event_times]
    return [f for f in frames if 0 < f < num_frames]


def onset_f1(detected: list[int], truth: list[int], tolerance: int) -> float:
    """F1 of a one-to-one matching of detected to true frames within +-tolerance (greedy by distance)."""
    if not truth and not detected:
        return 1.0
    if not truth or not detected:
        return 0.0
    pairs = sorted(
        (abs(d - t), i, j) for i, d in enumerate(detected) for j, t in enumerate(truth) if abs(d - t) <= tolerance
    )
    used_d, used_t = set(), set()
    for _, i, j in pairs:
        if i not in used_d and j not in used_t:
            used_d.add(i)
            used_t.add(j)
    matches = len(used_d)
    if matches == 0:
        return 0.0
    precision, recall = matches / len(detected), matches / len(truth)
    return 2 * precision * recall / (precision + recall)


def has_event_frames(event_times: list[list[float]], fps: float, num_frames: int) -> bool:
    """Whether any clip has an event to score: the real datasets have no event times at all."""
    return any(event_frames(times, fps, num_frames) for times in event_times)


def event_sync(videos: np.ndarray, event_times: list[list[float]], fps: float, tolerance: int = 1) -> float:
    """Mean onset F1 x100 over the clips that have events; videos [N, T, H, W, 3] uint8.

    Raises ValueError when no clip has one (check `has_event_frames` first).
    """
    scores = []
    for video, times in zip(videos, event_times):
        truth = event_frames(times, fps, len(video))
        if truth:
            scores.append(onset_f1(detect_onsets(video), truth, tolerance))
    if not scores:
        raise ValueError("event_sync needs clips with ground-truth event times")
    return 100.0 * float(np.mean(scores))
