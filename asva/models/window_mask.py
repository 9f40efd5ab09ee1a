"""Audio window attention: which audio tokens each video frame may attend to.

Frame i sits at time i / FPS; it sees the audio tokens whose timestamps lie within r / FPS seconds
of it (scaling-up-asva Section 4, "Audio window attention"). r = 0.5 is the many-to-one split of
earlier work; larger r lets neighbouring frames share tokens.
"""

from __future__ import annotations

import torch

# Timestamps are floats: a token exactly on the window's edge must count as inside.
_EDGE_TOLERANCE_S = 1e-6


def frame_times(num_frames: int, fps: float) -> torch.Tensor:
    return torch.arange(num_frames, dtype=torch.float64) / fps


def window_mask(frame_times_s: torch.Tensor, token_times_s: torch.Tensor, radius: float, fps: float) -> torch.Tensor:
    """[frames, tokens] boolean mask, True where |t_token - t_frame| <= radius / fps."""
    if radius <= 0:
        raise ValueError(f"window radius must be > 0, got {radius}")
    distance = (token_times_s.double()[None, :] - frame_times_s.double()[:, None]).abs()
    return distance <= radius / fps + _EDGE_TOLERANCE_S
