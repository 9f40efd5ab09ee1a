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


# Tokens every 1/24 s over the 2-s clip: every window edge below (r a multiple of 0.5, 6 or 12 FPS)
# falls on a token, so the tests also say on which side of an edge a token lands.
GRID = torch.arange(49, dtype=torch.float64) / 24


@pytest.mark.parametrize(
    "fps, radius, frame, first, last",
    [
        # 6 FPS, frame 3 timed at 14/24 s, r / 6 s = 4r/24 s either side: tokens first .. last (x 1/24 s).
        (6, 0.5, 3, 12, 15),
        (6, 1.0, 3, 10, 17),
        (6, 1.5, 3, 8, 19),
        (6, 2.0, 3, 6, 21),
        (6, 3.0, 3, 2, 25),
        # The first and last frames (2/24 and 46/24 s): their windows are cut by the clip's ends.
        (6, 1.5, 0, 0, 7),
        (6, 1.5, 11, 40, 48),
        # 12 FPS, frame 6 timed at 13/24 s, r / 12 s = 2r/24 s either side.
        (12, 0.5, 6, 12, 13),
        (12, 1.5, 6, 10, 15),
        (12, 3.0, 6, 7, 18),
    ],
)
def test_a_frame_sees_the_tokens_within_r_over_fps_seconds_of_its_centre(fps, radius, frame, first, last):
    seen = tokens_seen(window_mask(frame_times(2 * fps, fps), GRID, radius, fps))
    assert seen[frame] == list(range(first, last + 1))


def test_tokens_near_the_clip_edges_are_seen_by_fewer_frames():
    # 6 FPS, r = 1.5: a token at t is seen by the frames timed in (t - 6/24, t + 6/24] s. Frames sit
    # at 2/24, 6/24, ..., 46/24 s: 2 frames see the first tokens, 3 those inside, 1 the token at 2 s.
    counts = window_mask(frame_times(12, 6), GRID, 1.5, 6).sum(dim=0).tolist()
    assert counts[:6] == [2, 2, 2, 2, 3, 3] and counts[-6:] == [3, 2, 2, 2, 2, 1]


@pytest.mark.parametrize("fps", [6, 12])
@pytest.mark.parametrize("radius", [0.5, 1.0, 1.5, 2.0, 3.0])
def test_a_token_inside_the_clip_is_seen_by_2r_frames_and_a_wider_window_sees_more(fps, radius):
    frames = frame_times(2 * fps, fps)
    mask = window_mask(frames, GRID, radius, fps)
    assert mask.any(dim=1).all()  # every frame sees a token
    # 1 s in the middle of the clip is inside every frame's reach for r <= 3 at 6 FPS.
    middle = (GRID >= 0.5) & (GRID <= 1.5)
    assert mask[:, middle].sum(dim=0).tolist() == [2 * radius] * int(middle.sum())
    if radius > 0.5:
        assert (window_mask(frames, GRID, radius - 0.5, fps) <= mask).all()


def test_12_fps_window_is_half_as_wide_as_6_fps():
    tokens = torch.tensor([0.0, 0.1, 0.2, 0.3], dtype=torch.float64)
    at6 = window_mask(torch.tensor([0.0], dtype=torch.float64), tokens, 1.5, fps=6)  # 0.25 s
    at12 = window_mask(torch.tensor([0.0], dtype=torch.float64), tokens, 1.5, fps=12)  # 0.125 s
    assert tokens_seen(at6) == [[0, 1, 2]]
    assert tokens_seen(at12) == [[0, 1]]


def test_non_positive_radius_is_refused():
    with pytest.raises(ValueError):
        window_mask(frame_times(2, 6), torch.zeros(1), 0.0, 6)
