"""The real-dataset loaders on small folders written here in the release layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from training_videos import time_coded_frames

from asva.config.schema import DataConfig
from asva.data.dataset import load_pool, load_split, load_vggsound, read_vggsound_csv
from asva.data.media import read_audio, read_clip, write_video, write_wav
from asva.errors import DataError


def stereo_tone(seconds: float, rate: int) -> np.ndarray:
    """[2, S]: the same 440 Hz tone at 0.4 on the left and 0.2 on the right (mono average: 0.3)."""
    t = np.arange(round(seconds * rate)) / rate
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return np.stack([0.4 * tone, 0.2 * tone])


def write_avsync_layout(root, classes, train, test, seconds=2.0, fps=6):
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    (root / "train.txt").write_text("\n".join(train) + "\n")
    (root / "test.txt").write_text("\n".join(test) + "\n")
    for entry in train + test:
        frames = time_coded_frames(seconds, fps)
        write_video(root / "videos" / entry, frames, fps, np.zeros(round(seconds * 16000), np.float32) + 0.01)


def test_avsync_layout_with_a_wav_beside_the_mp4_in_stereo_44k(tmp_path):
    write_avsync_layout(tmp_path, ["dog", "hammer"], ["dog/d1.mp4", "hammer/h1.mp4"], ["dog/d2.mp4", "hammer/h2.mp4"])
    # h1: a silent-track-free mp4 whose sound is a stereo 44.1 kHz wav beside it.
    video = tmp_path / "videos" / "hammer" / "h1.mp4"
    write_video(video, time_coded_frames(2.0, 6), 6)
    write_wav(video.with_suffix(".wav"), stereo_tone(2.0, 44100), 44100)
    data = DataConfig(name="avsync15", root=str(tmp_path), frame_size=32, train_clip_start="start")
    train = load_split(tmp_path, "train", data, tmp_path / "cache")
    assert train.video_ids == ["d1", "h1"] and train.labels == ["dog", "hammer"]
    assert train.frames.shape == (2, 12, 32, 32, 3)
    assert train.audio.shape == (2, 32000)
    peak = train.audio[1].abs().max().item()
    assert peak == pytest.approx(0.3, abs=0.01)  # stereo averaged, resampled 44.1 -> 16 kHz
    assert len(load_split(tmp_path, "test", data, tmp_path / "cache")) == 2


def test_stereo_aac_in_the_mp4_is_averaged_not_reshaped(tmp_path):
    path = tmp_path / "stereo.mp4"
    write_video(path, time_coded_frames(2.0, 6), 6, stereo_tone(2.0, 44100), sample_rate=44100)
    audio = read_audio(path, 16000)
    middle = audio[4000:28000]
    assert np.abs(middle).max() == pytest.approx(0.3, abs=0.02)
    # Reshaping interleaved stereo as if it were mono doubles the length and aliases the tone.
    assert abs(len(audio) - 32000) < 1100
    spectrum = np.abs(np.fft.rfft(middle))
    assert abs(np.argmax(spectrum) * 16000 / len(middle) - 440) < 5


def test_frames_are_center_cropped_then_resized(tmp_path):
    frames = np.zeros((12, 40, 80, 3), dtype=np.uint8)
    frames[:, :, :20] = 255  # the outer quarters are cropped away
    frames[:, :, 60:] = 255
    frames[:, :, 20:60] = 100
    path = tmp_path / "wide.mp4"
    write_video(path, frames, 6, np.zeros(32000, np.float32))
    clip = read_clip(path, fps=6, seconds=2.0, frame_size=16)
    assert clip.frames.shape == (12, 16, 16, 3)
    assert abs(float(clip.frames.mean()) - 100) < 4


def test_training_clips_start_uniformly_and_reproducibly_test_clips_at_zero(tmp_path):
    entries = [f"dog/v{i}.mp4" for i in range(6)]
    write_avsync_layout(tmp_path, ["dog"], entries, ["dog/t.mp4"], seconds=8.0, fps=12)
    # Decoded into memory: its fixed clips are decoded, so their starts are known (a streamed split's
    # clips are placed when a batch draws them: tests/test_streaming.py).
    data = DataConfig(name="avsync15", root=str(tmp_path), frame_size=16, decode="memory")
    train = load_split(tmp_path, "train", data, tmp_path / "cache")
    again = load_split(tmp_path, "train", data, tmp_path / "cache2")
    assert train.starts == again.starts
    assert len(set(round(s, 3) for s in train.starts)) == 6  # a different window per video
    assert all(0 <= s <= 6.0 for s in train.starts)
    for index, start in enumerate(train.starts):
        # 6 FPS from 12 FPS frames: the frames shown at start, start + 1/6, ... by brightness.
        levels = train.frames[index].float().mean(dim=(1, 2, 3)).numpy()
        expected = 20 * (np.floor((start + np.arange(12) / 6 + 1e-3) * 12) / 12)
        np.testing.assert_allclose(levels, expected, atol=3)
    test = load_split(tmp_path, "test", data, tmp_path / "cache")
    assert test.starts == [0.0]


def write_vggsound(root):
    (root / "vggsound.csv").write_text(
        'aaaaaaaaaaa,30,"dog barking",train\n'
        "bbbbbbbbbbb,4,hammering,train\n"
        'ccccccccccc,0,"dog barking",test\n'
        "ddddddddddd,12,hammering,train\n"  # never downloaded
    )
    clip = time_coded_frames(10.0, 6)
    sound = np.zeros(160000, np.float32) + 0.01
    write_video(root / "video" / "aaaaaaaaaaa_000030.mp4", clip, 6, sound)
    write_video(root / "video" / "ccccccccccc_000000.mp4", clip, 6, sound)
    # A whole YouTube video (16 s): its labelled window starts at second 4.
    write_video(
        root / "video" / "bbbbbbbbbbb.mp4", time_coded_frames(16.0, 6), 6, np.zeros(16 * 16000, np.float32) + 0.01
    )


def test_vggsound_csv_and_clip_folder(tmp_path):
    write_vggsound(tmp_path)
    rows = read_vggsound_csv(tmp_path / "vggsound.csv")
    assert rows[0] == ("aaaaaaaaaaa", 30.0, "dog barking", "train")
    data = DataConfig(name="synthetic", frame_size=16, pool_format="vggsound", pool_csv="vggsound.csv")
    pool = load_pool(data, tmp_path, tmp_path / "cache")
    assert pool.video_ids == ["aaaaaaaaaaa_000030", "bbbbbbbbbbb_000004"]
    assert pool.classes == ["dog barking", "hammering"]
    # Training draws from the labelled 10 s: of the whole video from its labelled second 4.
    assert pool.windows.video_start.tolist() == [0.0, 4.0]
    assert pool.windows.row_starts.tolist() == [10 * 6 - 12 + 1] * 2
    assert 4.0 <= pool.starts[1] <= 12.0 and 0 <= pool.starts[0] <= 8.0  # the fixed 2-s clips
    brightness = float(pool.frames[1, 0].float().mean())  # 20 per second of the video
    assert brightness == pytest.approx(20 * pool.starts[1], abs=3)
    assert len(pool.skipped) == 1 and "ddddddddddd_000012" in pool.skipped[0]
    test = load_vggsound(tmp_path, tmp_path / "vggsound.csv", "test", data, tmp_path / "cache")
    assert test.video_ids == ["ccccccccccc_000000"]


def test_vggsound_errors_name_the_file(tmp_path):
    data = DataConfig(pool_format="vggsound")
    with pytest.raises(DataError, match="data.pool_csv"):
        load_pool(data, tmp_path, tmp_path / "cache")
    (tmp_path / "bad.csv").write_text("x,1,label\n")
    with pytest.raises(DataError, match="bad.csv:1"):
        read_vggsound_csv(tmp_path / "bad.csv")


def test_avsync48_layout_counts_per_split(tmp_path):
    classes = ["a", "b"]
    train = [f"{c}/{c}{i}.mp4" for c in classes for i in range(2)]
    test = [f"{c}/{c}t{i}.mp4" for c in classes for i in range(3)]
    write_avsync_layout(tmp_path, classes, train, test)
    data = DataConfig(name="avsync48", root=str(tmp_path), frame_size=16)
    assert len(load_split(tmp_path, "train", data, tmp_path / "c")) == 4
    clips = load_split(tmp_path, "test", data, tmp_path / "c")
    assert clips.labels.count("a") == 3 and torch.equal(clips.label_indices(), torch.tensor([0, 0, 0, 1, 1, 1]))
