import pytest
import torch

from asva.models.window_mask import frame_times, window_mask


def tokens_seen(mask: torch.Tensor) -> list[list[int]]:
    return [torch.nonzero(row).flatten().tolist() for row in mask]


def test_radius_half_frame_splits_tokens_between_frames():
    # 6 FPS, frames at 1/12, 3/12, 5/12 s, tokens every 1/12 s: r = 0.5 gives frame i its chunk
    # [i/6, (i+1)/6). A token on a chunk border (0, 2/12, 4/12) belongs to the later chunk only.
    frames = frame_times(3, fps=6)
    tokens = torch.arange(8, dtype=torch.float64) / 12
    seen = tokens_seen(window_mask(frames, tokens, radius=0.5, fps=6))
    assert seen == [[0, 1], [2, 3], [4, 5]]


def test_larger_radius_shares_tokens_with_neighbours():
    frames = frame_times(3, fps=6)
    tokens = torch.arange(8, dtype=torch.float64) / 12
    seen = tokens_seen(window_mask(frames, tokens, radius=1.5, fps=6))
    assert seen == [[0, 1, 2, 3], [0, 1, 2, 3, 4, 5], [2, 3, 4, 5, 6, 7]]


def test_a_token_a_float_error_off_a_chunk_border_belongs_to_the_later_chunk_only():
    # Token times in float32 (the stand-ins') are off by ~1e-8 s: on either side of the 1/6 s border,
    # such a token is still frame 1's alone.
    near_border = torch.tensor([1 / 6 - 1e-8, 1 / 6, 1 / 6 + 1e-8], dtype=torch.float64)
    assert tokens_seen(window_mask(frame_times(2, 6), near_border, 0.5, 6).T) == [[1], [1], [1]]


@pytest.mark.parametrize("fps", [6, 12])
@pytest.mark.parametrize("radius", [0.5, 1.0, 1.5, 2.0, 3.0])
def test_window_is_radius_over_fps_seconds(fps, radius):
    frames = frame_times(2 * fps, fps)
    tokens = torch.linspace(0, 2, 97, dtype=torch.float64)
    mask = window_mask(frames, tokens, radius, fps)
    offset = tokens[None] - frames[:, None] + 1e-6  # the edge tolerance
    assert torch.equal(mask, (-radius / fps <= offset) & (offset < radius / fps))
    # Every frame sees at least one token, and a wider window never sees fewer.
    assert mask.any(dim=1).all()
    # Half-open windows: a token whose window lies inside the clip is seen by exactly 2r frames.
    inside = (tokens >= radius / fps) & (tokens <= 2 - radius / fps)
    assert (mask[:, inside].sum(dim=0) == 2 * radius).all()
    if radius > 0.5:
        assert (window_mask(frames, tokens, radius - 0.5, fps) <= mask).all()


def test_12_fps_window_is_half_as_wide_as_6_fps():
    tokens = torch.tensor([0.0, 0.1, 0.2, 0.3], dtype=torch.float64)
    at6 = window_mask(torch.tensor([0.0], dtype=torch.float64), tokens, 1.5, fps=6)  # 0.25 s
    at12 = window_mask(torch.tensor([0.0], dtype=torch.float64), tokens, 1.5, fps=12)  # 0.125 s
    assert tokens_seen(at6) == [[0, 1, 2]]
    assert tokens_seen(at12) == [[0, 1]]


def test_non_positive_radius_is_refused():
    with pytest.raises(ValueError):
        window_mask(frame_times(2, 6), torch.zeros(1), 0.0, 6)
