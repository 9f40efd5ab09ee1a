"""Reading a dataset folder in the AVSync15 layout, with broken files in it."""

import numpy as np
import pytest

from asva.config.schema import DataConfig, SyntheticConfig
from asva.data.dataset import load_split
from asva.data.media import write_video
from asva.data.synthetic import generate
from asva.errors import DataError


def write_layout(root, entries, broken=()):
    (root / "classes.txt").write_text("drum\nbell\n")
    (root / "train.txt").write_text("\n".join(entries) + "\n")
    for entry in entries:
        path = root / "videos" / entry
        path.parent.mkdir(parents=True, exist_ok=True)
        if entry in broken:
            path.write_bytes(b"this is not an mp4")
        else:
            frames = np.full((12, 40, 48, 3), 90, dtype=np.uint8)
            write_video(path, frames, 6, np.zeros(32000, dtype=np.float32))


def test_broken_files_are_skipped_and_counted(tmp_path):
    entries = ["drum/a.mp4", "drum/b.mp4", "bell/c.mp4"]
    write_layout(tmp_path, entries, broken={"drum/b.mp4"})
    clips = load_split(tmp_path, "train", DataConfig(frame_size=32), tmp_path / "cache")
    assert clips.video_ids == ["a", "c"]
    assert clips.frames.shape == (2, 12, 32, 32, 3)  # center-cropped and resized
    assert clips.fbank.shape == (2, 198, 128)
    assert len(clips.skipped) == 1 and "drum/b.mp4" in clips.skipped[0]
    again = load_split(tmp_path, "train", DataConfig(frame_size=32), tmp_path / "cache")  # from the cache
    assert again.video_ids == clips.video_ids and again.skipped == clips.skipped


def test_missing_folder_and_split_are_named(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_split(tmp_path / "nowhere", "train", DataConfig(), tmp_path)
    (tmp_path / "classes.txt").write_text("drum\n")
    with pytest.raises(DataError, match="test.txt: split file missing"):
        load_split(tmp_path, "test", DataConfig(), tmp_path)


def test_synthetic_benchmark_is_deterministic_and_in_the_release_layout(tmp_path):
    data = DataConfig(synthetic=SyntheticConfig(train_per_class=2, test_per_class=1, pool_per_class=2))
    first = generate(data, tmp_path / "one")
    second = generate(data, tmp_path / "two")
    assert (first / "classes.txt").read_text() == "ball_bounce\ndrum\nhammer\nlamp_flash\n"
    assert len((first / "train.txt").read_text().split()) == 8
    assert (first / "manifest.csv").read_text() == (second / "manifest.csv").read_text()
    pool_classes = (first / "pool" / "classes.txt").read_text().split()
    assert {"bell", "clapper"} <= set(pool_classes)
    one = load_split(first, "test", data, tmp_path / "cache")
    two = load_split(second, "test", data, tmp_path / "cache")
    assert all(times for times in one.event_times)
    assert (one.frames.float() - two.frames.float()).abs().max() == 0
