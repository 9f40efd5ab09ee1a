"""Training draws a new uniformly placed 2-s clip of each video at every step (asva/data/windows.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_model_and_training import make_model

from asva.config.schema import DataConfig, DiffusionConfig, StageConfig
from asva.data import curation
from asva.data.dataset import load_split
from asva.data.loader import clip_fractions
from asva.data.windows import VideoWindows
from asva.training.adapters import StageClips, train_adapter_stage
from asva.training.pretrain import _kept_spans


@pytest.fixture(scope="module")
def long_videos(training_videos, tmp_path_factory):
    """The training split (tests/training_videos.py) decoded into memory with its whole videos."""
    data = DataConfig(name="avsync15", root=str(training_videos), frame_size=16, decode="memory")
    return load_split(training_videos, "train", data, tmp_path_factory.mktemp("decoded"))


def test_a_training_split_keeps_whole_videos_row_for_row(long_videos):
    windows = long_videos.windows
    assert len(windows) == len(long_videos) == 4
    # 8 s at 6 FPS holds 48 frames, so 37 clip starts; the 2-s video holds exactly one clip.
    assert windows.row_starts.tolist() == [37, 37, 37, 1]
    assert windows.has_choice


def test_each_draw_shows_the_frames_and_sound_of_its_start(long_videos):
    windows = long_videos.windows
    rows = torch.tensor([0] * 300)
    starts = windows.starts_at(rows, torch.rand(300, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    assert starts.min() >= 0 and starts.max() <= 36
    assert len(set(starts.tolist())) >= 33  # uniform over the 37 starts (300 draws)
    frames, audio = windows.clips(rows[:20], starts[:20])
    assert frames.shape == (20, 12, 16, 16, 3) and audio.shape == (20, 32000)
    seconds = (windows.video_start[windows.row_video[rows[:20]]] + starts[:20] / 6).numpy()  # 6 FPS
    for clip_frames, clip_audio, start in zip(frames, audio, seconds):
        brightness = clip_frames.float().mean(dim=(1, 2, 3)).numpy()
        np.testing.assert_allclose(brightness, 20 * (start + np.arange(12) / 6), atol=3)
        # Mean |sin| is 2/pi: the clip's sound is the ramp's from its start to 2 s later.
        expected = 0.05 * (1 + start + 1.0) * 2 / np.pi
        assert float(clip_audio[1000:-1000].abs().mean()) == pytest.approx(expected, rel=0.08)


def test_draws_are_reproducible_and_differ_between_steps(long_videos):
    windows = long_videos.windows
    rows = torch.tensor([0, 2, 3])
    first = windows.starts_at(rows, clip_fractions(11, 3, seed=0))
    again = windows.starts_at(rows, clip_fractions(11, 3, seed=0))
    later = [windows.starts_at(rows, clip_fractions(step, 3, seed=0)) for step in range(12, 20)]
    assert torch.equal(first, again)
    assert any(not torch.equal(first, other) for other in later)
    assert not torch.equal(clip_fractions(11, 3, seed=0), clip_fractions(11, 3, seed=1))


def test_the_fixed_clip_of_a_video_is_one_of_its_windows(long_videos):
    windows = long_videos.windows
    for row in range(len(long_videos)):
        start_frame = round((long_videos.starts[row] - float(windows.video_start[row])) * 6)
        frames, audio = windows.clips(torch.tensor([row]), torch.tensor([start_frame]))
        assert torch.equal(frames[0], long_videos.frames[row])
        assert torch.allclose(audio[0], long_videos.audio[row])


def test_restricting_a_row_to_a_span_of_its_file():
    frames = [torch.zeros(30, 4, 4, 3, dtype=torch.uint8)]  # 5 s at 6 FPS, decoded from second 4
    windows = VideoWindows.from_videos(
        frames, [torch.zeros(5 * 16000)], [4.0], clip_frames=12, fps=6, sample_rate=16000
    )
    assert windows.row_starts.tolist() == [19]
    assert windows.fits(0, 5.0, 7.0) and not windows.fits(0, 5.0, 6.9) and not windows.fits(0, 0.0, 4.5)
    narrowed = windows.restrict([0], [(5.0, 8.0)])
    assert narrowed.row_first.tolist() == [6] and narrowed.row_starts.tolist() == [7]  # starts 5.0 .. 6.0 s
    starts = narrowed.starts_at(
        torch.zeros(200, dtype=torch.long),
        torch.rand(200, generator=torch.Generator().manual_seed(0), dtype=torch.float64),
    )
    assert set(starts.tolist()) == set(range(6, 13))
    with pytest.raises(ValueError, match=r"no 12-frame clip fits in \[5, 6.5\]"):
        windows.restrict([0], [(5.0, 6.5)])


def test_curated_pool_trains_on_the_longest_kept_segment(long_videos):
    verdicts = {
        "v0": curation.Verdict("v0", "dog", "", kept=[(0.0, 2.5), (3.0, 7.0)]),
        "v1": curation.Verdict("v1", "dog", "", kept=[(1.0, 2.9)], rejected=[("scenes", 2.9, 8.0, "cut")]),
        "v2": curation.Verdict("v2", "dog", "", kept=[(0.0, 8.0)]),
        "short": curation.Verdict("short", "cat", "", kept=[(0.0, 1.5)], rejected=[("flow", 1.5, 2.0, "too fast")]),
    }
    by_id = {video_id: verdicts[video_id] for video_id in long_videos.video_ids}
    kept, rejected = _kept_spans(long_videos, by_id)
    assert sorted(kept.video_ids) == ["v0", "v2"]
    assert set(rejected) == {"v1", "short"} and "too fast" in rejected["short"]
    v0 = kept.video_ids.index("v0")
    assert kept.windows.row_first[v0] == 18 and kept.windows.row_starts[v0] == 13  # starts 3.0 .. 5.0 s


def test_each_step_trains_on_newly_drawn_clips_and_resumes_exactly(long_videos, tmp_path):
    seen: list[list[float]] = []

    def spy(model):
        encode = model.base.encode_video

        def recording(frames):
            seen.append([round(float(f[0].float().mean()) / 20, 2) for f in frames])  # first frame's time
            return encode(frames)

        model.base.encode_video = recording
        return model

    stage = StageConfig(lr=3e-3, batch_size=2, steps=8, checkpoint_every=4)
    straight = spy(make_model())
    train_adapter_stage(straight, long_videos, stage, DiffusionConfig(), 0, "test")
    assert len(seen) == 8  # one encode per step: the clips are drawn then
    starts = {start for batch in seen for start in batch}
    assert len(starts) >= 6  # 16 drawn clips start at many different times

    half = StageConfig(lr=3e-3, batch_size=2, steps=4, checkpoint_every=4)
    checkpoint = tmp_path / "ckpt.pt"
    train_adapter_stage(make_model(), long_videos, half, DiffusionConfig(), 0, "test", checkpoint_path=checkpoint)
    again = make_model()
    train_adapter_stage(again, long_videos, stage, DiffusionConfig(), 0, "test", checkpoint_path=checkpoint)
    for key, value in straight.adapter_state_dict().items():
        assert torch.equal(value, again.adapter_state_dict()[key]), key


def test_videos_with_a_single_clip_are_encoded_once(long_videos):
    short = long_videos.subset([long_videos.video_ids.index("short")])
    assert not short.windows.has_choice
    source = StageClips(make_model(), short, DataConfig())
    assert source.windows is None  # nothing to draw: the one clip was encoded up front
    assert torch.equal(source.frames, short.frames)


def test_a_job_on_longer_embedded_videos_draws_clips_and_scores_three_per_video(tiny_job, monkeypatch):
    from asva.training import adapters

    stages: list[bool] = []
    build = adapters.StageClips.__init__

    def recording(self, *args, **kwargs):
        build(self, *args, **kwargs)
        stages.append(self.windows is not None)  # draws clips at every step

    monkeypatch.setattr(adapters.StageClips, "__init__", recording)
    _, metrics = tiny_job("data.synthetic.video_seconds=3", "pretrain=true", "study=long_videos")
    assert stages == [True, True]  # stage 1 on the pool and stage 2 draw new clips every step
    assert metrics["num_test_clips"] == 3 * 4 * 2  # 3 clips (at 0, 0.5, 1 s) of 2 test videos of 4 classes
