import numpy as np

from asva.data.synthetic import CLASSES, render_frames
from asva.evaluation.event_sync import detect_onsets, event_frames, event_sync, onset_f1


def render(label: str, events: list[float], seed: int = 0) -> np.ndarray:
    return render_frames(CLASSES[label], events, fps=6, seconds=2.0, size=32, rng=np.random.default_rng(seed))


def test_onsets_of_rendered_events_are_found_on_their_frames():
    for label in CLASSES:
        video = render(label, [0.6, 1.45])
        assert detect_onsets(video) == event_frames([0.6, 1.45], 6, 12) == [4, 9], label


def test_still_video_has_no_onsets_and_scores_zero():
    still = np.repeat(render("drum", [1.0])[:1], 12, axis=0)
    assert detect_onsets(still) == []
    assert event_sync(still[None], [[1.0]], fps=6) == 0.0


def test_f1_counts_matches_within_tolerance():
    assert onset_f1([4, 9], [4, 9], tolerance=0) == 1.0
    assert onset_f1([5], [4, 9], tolerance=0) == 0.0
    assert onset_f1([5], [4, 9], tolerance=1) == 2 * (1.0 * 0.5) / 1.5
    assert onset_f1([], [], tolerance=0) == 1.0


def test_ground_truth_beats_wrongly_timed_motion_and_static():
    rng = np.random.default_rng(0)
    times = [[float(t)] for t in rng.uniform(0.5, 1.8, size=20)]
    real = np.stack([render("hammer", t, seed=i) for i, t in enumerate(times)])
    shuffled = [times[(i + 7) % 20] for i in range(20)]
    static = np.repeat(real[:, :1], 12, axis=1)
    truth_score = event_sync(real, times, fps=6)
    assert truth_score > 90
    assert event_sync(real, shuffled, fps=6) < 40
    assert event_sync(static, times, fps=6) == 0.0
