import numpy as np
import pytest
import torch

from asva.data.audio import fbank
from asva.data.media import read_clip, write_video
from asva.errors import DataError


def test_fbank_of_two_seconds_is_198_frames_of_128_bins():
    audio = torch.randn(3, 32000) * 0.1
    features = fbank(audio, 16000)
    assert features.shape == (3, 198, 128)
    assert torch.isfinite(features).all()


def test_written_video_reads_back_with_sound_on_time(tmp_path):
    frames = np.zeros((12, 32, 32, 3), dtype=np.uint8)
    frames[6:] = 200  # the picture changes at t = 1.0 s
    audio = np.zeros(32000, dtype=np.float32)
    audio[16000:16400] = 0.8  # a click at t = 1.0 s
    path = tmp_path / "clip.mp4"
    write_video(path, frames, fps=6, audio=audio, sample_rate=16000)
    clip = read_clip(path, fps=6, seconds=2.0, frame_size=32)
    assert clip.frames.shape == (12, 32, 32, 3)
    assert clip.audio.shape == (32000,)
    onset = np.argmax(np.abs(clip.audio) > 0.3) / 16000
    assert abs(onset - 1.0) < 0.01  # AAC's encoder delay must not shift the sound
    brightness = clip.frames.mean(axis=(1, 2, 3))
    assert brightness[5] < 20 and brightness[6] > 180


def test_frames_are_resampled_by_timestamp(tmp_path):
    frames = np.stack([np.full((32, 32, 3), 10 * i, dtype=np.uint8) for i in range(24)])
    path = tmp_path / "twelve_fps.mp4"
    write_video(path, frames, fps=12, audio=np.zeros(32000, dtype=np.float32))
    clip = read_clip(path, fps=6, seconds=2.0, frame_size=16)
    levels = clip.frames.mean(axis=(1, 2, 3))
    assert clip.frames.shape == (12, 16, 16, 3)
    np.testing.assert_allclose(levels, 10 * np.arange(0, 24, 2), atol=3)


@pytest.mark.parametrize("content", [b"", b"not a video at all", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64])
def test_unreadable_files_raise_data_error_naming_the_path(tmp_path, content):
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(DataError, match="broken.mp4"):
        read_clip(path, fps=6, seconds=2.0, frame_size=32)


def test_too_short_clip_is_refused(tmp_path):
    path = tmp_path / "short.mp4"
    write_video(path, np.zeros((3, 32, 32, 3), dtype=np.uint8), fps=6, audio=np.zeros(8000, dtype=np.float32))
    with pytest.raises(DataError, match="shorter"):
        read_clip(path, fps=6, seconds=2.0, frame_size=32)
