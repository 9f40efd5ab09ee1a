"""The benchmark's test split never reaches pretraining: a pool sharing a test video is refused.

A video is the same as a test video when its id is, or when its first frames are: the content
fingerprint is a 16x16 colour thumbnail of the first frame with some structure (a black or flat
opening frame says nothing about the video), center-cropped like the loader crops. Two videos
match when their thumbnails differ by at most `MATCH_MEAN` levels (0-255) on average and by at most
`MATCH_P95` on 95% of the values: a copy re-encoded at another size and quality differs by about
1.5 / 5, the closest two different embedded clips by 4.4 / 14.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from asva.errors import DataError

THUMBNAIL_SIDE = 16
# First frames searched for one with structure; a thumbnail flatter than this (std, 0-255) is skipped.
FIRST_FRAMES = 12
MIN_STRUCTURE = 4.0
MATCH_MEAN = 3.0
MATCH_P95 = 8.0


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 -> [16, 16, 3] float colour thumbnail of the center square."""
    import cv2

    height, width = frame.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = np.ascontiguousarray(frame[top : top + side, left : left + side])
    return cv2.resize(square, (THUMBNAIL_SIDE, THUMBNAIL_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)


def thumbnail_of_first_frames(frames: np.ndarray) -> list[int] | None:
    """The fingerprint of a video from its frames [T, H, W, 3] (None if its opening is all flat)."""
    for frame in frames[:FIRST_FRAMES]:
        thumb = thumbnail(np.asarray(frame))
        if thumb.std() >= MIN_STRUCTURE:
            return thumb.round().astype(int).ravel().tolist()
    return None


def find_leaks(
    pool_ids: Sequence[str],
    pool_thumbnails: Sequence[list[int] | None],
    test_ids: Sequence[str],
    test_thumbnails: Sequence[list[int] | None],
) -> dict[str, str]:
    """{pool video id: why it is a test video} for every pool video that is one."""
    leaks: dict[str, str] = {}
    test_id_set = set(test_ids)
    for video_id in pool_ids:
        if video_id in test_id_set:
            leaks[video_id] = f"same id as test video {video_id}"
    known = [(i, t) for i, t in zip(test_ids, test_thumbnails) if t is not None]
    candidates = [(i, t) for i, t in zip(pool_ids, pool_thumbnails) if t is not None and i not in leaks]
    if not known or not candidates:
        return leaks
    tests = np.asarray([t for _, t in known], dtype=np.float32)
    for start in range(0, len(candidates), 64):
        chunk = candidates[start : start + 64]
        pool = np.asarray([t for _, t in chunk], dtype=np.float32)
        difference = np.abs(pool[:, None, :] - tests[None, :, :])
        distance = difference.mean(axis=-1)
        nearest = distance.argmin(axis=1)
        for row, (video_id, _) in enumerate(chunk):
            close = difference[row, nearest[row]]
            if close.mean() <= MATCH_MEAN and np.percentile(close, 95) <= MATCH_P95:
                leaks[video_id] = (
                    f"first frames match test video {known[nearest[row]][0]} "
                    f"(mean difference {distance[row, nearest[row]]:.2f} of 255)"
                )
    return leaks


def clip_thumbnails(frames) -> list[list[int] | None]:
    """Fingerprints of decoded clips [N, T, H, W, 3] (a ClipSet's frames)."""
    array = frames.numpy() if hasattr(frames, "numpy") else np.asarray(frames)
    return [thumbnail_of_first_frames(clip) for clip in array]


def assert_no_test_leak(pool, test, what: str = "pretraining pool") -> None:
    """Refuse a pool (ClipSet) that shares a video with a benchmark test split (ClipSet)."""
    leaks = find_leaks(pool.video_ids, clip_thumbnails(pool.frames), test.video_ids, clip_thumbnails(test.frames))
    if leaks:
        listed = "; ".join(f"{vid}: {why}" for vid, why in sorted(leaks.items())[:5])
        more = f" (and {len(leaks) - 5} more)" if len(leaks) > 5 else ""
        raise DataError(
            f"{what}: {len(leaks)} video(s) belong to the benchmark test split, which training must never see: "
            f"{listed}{more}. Curate the pool with the benchmark named (sweeps/curate.py benchmarks=[...])."
        )
