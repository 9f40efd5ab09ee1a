"""Automatic curation of the pretraining pool (stage 1), as far as the embedded default needs it.

The paper filters web video with length/FPS/resolution checks, scene cuts, optical flow and text
detection. The synthetic pool has none of those defects but does hold static clips (sound over a
still picture), which a motion filter removes. Audio-visual misalignment and distractor sounds
stay in: no automatic visual filter can see them, exactly as in the paper's curated pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from asva.data.dataset import ClipSet

# Mean absolute grey-level change (0-255) between consecutive frames below which a clip is static.
STATIC_MOTION_THRESHOLD = 0.5


@dataclass
class CurationResult:
    kept: list[int]
    rejected: dict[str, str]  # video id -> reason


def mean_motion(frames_uint8: torch.Tensor) -> torch.Tensor:
    """[N, T, H, W, 3] -> [N] mean absolute change of grey level between consecutive frames."""
    grey = frames_uint8.float().mean(dim=-1)
    return (grey[:, 1:] - grey[:, :-1]).abs().mean(dim=(1, 2, 3))


def curate(pool: ClipSet, mode: str) -> CurationResult:
    if mode == "none":
        return CurationResult(kept=list(range(len(pool))), rejected={})
    motion = mean_motion(pool.frames)
    kept, rejected = [], {}
    for index, value in enumerate(motion.tolist()):
        if value < STATIC_MOTION_THRESHOLD:
            rejected[pool.video_ids[index]] = f"static: mean motion {value:.3f} < {STATIC_MOTION_THRESHOLD}"
        else:
            kept.append(index)
    return CurationResult(kept=kept, rejected=rejected)
