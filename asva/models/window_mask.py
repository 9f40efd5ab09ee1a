"""Audio window attention: which audio tokens each video frame may attend to.

Frame i stands for the i-th 1/FPS chunk of the clip and is timed at that chunk's centre,
(i + 0.5) / FPS. It sees the audio tokens whose timestamps lie within r / FPS seconds of that centre
(scaling-up-asva Section 4, "Audio window attention"). r = 0.5 is then exactly the many-to-one split
of earlier work (asva-eccv2024 Section 4.2): the clip's tokens cut into non-overlapping chunks, frame
i seeing chunk i. Larger r lets neighbouring frames share tokens.

The window is half-open, [centre - r / FPS, centre + r / FPS): at r = 0.5 a token on the border of
two chunks belongs to the later one only, so every token inside the clip belongs to exactly one
frame; in general (2r whole) to exactly 2r frames.
"""

from __future__ import annotations

import torch

# Timestamps are floats, so a token meant to sit exactly on a window edge may land a hair on either
# side of it. Shifting both edges down by this much (still half-open) puts such a token in the window
# that starts at that edge, and in no other.
_EDGE_TOLERANCE_S = 1e-6


def frame_times(num_frames: int, fps: float) -> torch.Tensor:
    """Seconds of every frame: the centre of its 1/FPS chunk of the clip."""
    return (torch.arange(num_frames, dtype=torch.float64) + 0.5) / fps


def window_mask(frame_times_s: torch.Tensor, token_times_s: torch.Tensor, radius: float, fps: float) -> torch.Tensor:
    """[frames, tokens] boolean mask, True where -r / fps <= t_token - t_frame < r / fps."""
    if radius <= 0:
        raise ValueError(f"window radius must be > 0, got {radius}")
    offset = token_times_s.double()[None, :] - frame_times_s.double()[:, None] + _EDGE_TOLERANCE_S
    half_width = radius / fps
    return (offset >= -half_width) & (offset < half_width)
