"""Training videos streamed from their files (asva/data/streaming.py, asva/data/loader.py)."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch
from test_model_and_training import make_model

import asva.distributed as distributed
from asva.config.schema import DataConfig, DiffusionConfig, StageConfig
from asva.data.dataset import load_split
from asva.data.loader import Draw, StepDraws, WindowClips, clip_loader
from asva.distributed import World
from asva.errors import DataError
from asva.training.adapters import train_adapter_stage


def data_config(root, decode: str) -> DataConfig:
    return DataConfig(name="avsync15", root=str(root), frame_size=16, decode=decode, num_workers=0)


@pytest.fixture(scope="module")
def both(training_videos, tmp_path_factory):
    """(streamed, in-memory) decodes of the same training split (tests/training_videos.py)."""
    cache = tmp_path_factory.mktemp("decoded")
    return tuple(
        load_split(training_videos, "train", data_config(training_videos, decode), cache)
        for decode in ("stream", "memory")
    )


def test_a_streamed_split_decodes_nothing_up_front(both):
    streamed, memory = both
    assert streamed.streamed and streamed.frames is None and streamed.audio is None
    assert streamed.video_ids == memory.video_ids and streamed.labels == memory.labels
    assert streamed.source != memory.source  # different caches: different fingerprints


@pytest.mark.parametrize("fraction", [0.0, 0.37, 0.999])
def test_a_streamed_clip_is_the_clip_decoded_from_memory(both, fraction):
    streamed, memory = both
    for row in range(len(memory)):
        frames, audio = streamed.windows.clip(row, fraction)
        expected_frames, expected_audio = memory.windows.clip(row, fraction)
        assert torch.equal(frames, expected_frames), row
        torch.testing.assert_close(audio, expected_audio, atol=1e-5, rtol=0)


def test_the_fixed_clips_of_a_streamed_split_are_those_of_memory(both):
    streamed, memory = both
    decoded = streamed.decoded()
    assert torch.equal(decoded.frames, memory.frames)
    torch.testing.assert_close(decoded.audio, memory.audio, atol=1e-5, rtol=0)


def test_a_stage_trains_the_same_on_streamed_and_in_memory_clips(training_videos, both):
    stage = StageConfig(lr=3e-3, batch_size=2, steps=4, checkpoint_every=100)
    losses = []
    for clips in both:
        model = make_model()
        losses.append(
            train_adapter_stage(
                model, clips, stage, DiffusionConfig(), 0, "test", data=data_config(training_videos, "stream")
            )
        )
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)


def test_draws_depend_on_seed_and_step_only_and_split_over_ranks(monkeypatch):
    whole = StepDraws(num_rows=10, batch_size=7, seed=3, first_step=0, total_steps=4, data_parallel=False)
    resumed = StepDraws(num_rows=10, batch_size=7, seed=3, first_step=2, total_steps=4, data_parallel=False)
    assert list(resumed) == list(whole)[2:]  # a resumed run reads what it would have
    ranks = []
    for rank in range(2):
        monkeypatch.setattr(distributed, "current", lambda rank=rank: World(rank, 2, 0))
        ranks.append(list(StepDraws(10, 7, 3, 0, 4, data_parallel=True)))
    for step, draws in enumerate(whole):
        assert ranks[0][step] + ranks[1][step] == draws
        assert len(ranks[0][step]) == (len(draws) + 1) // 2 and {d.global_size for d in draws} == {len(draws)}


def test_workers_read_exactly_what_the_training_process_reads(both):
    streamed, _ = both
    batches = []
    for workers in (0, 2):
        draws = StepDraws(len(streamed), 3, seed=1, first_step=0, total_steps=3, data_parallel=False)
        batches.append(list(clip_loader(streamed.windows, 16000, draws, workers, 2, pin_memory=False)))
    for serial, parallel in zip(*batches):
        assert torch.equal(serial.rows, parallel.rows) and torch.equal(serial.frames, parallel.frames)
        assert torch.equal(serial.fbank, parallel.fbank)


def test_a_file_broken_during_training_is_skipped_counted_and_named_once(training_videos, tmp_path, caplog):
    copy = tmp_path / "copy"
    shutil.copytree(training_videos, copy)
    clips = load_split(copy, "train", data_config(copy, "stream"), tmp_path / "cache")
    broken = copy / "videos" / "dog" / "v1.mp4"
    broken.write_bytes(broken.read_bytes()[:300])  # truncated after the split was read
    failed: set[str] = set()
    stage = StageConfig(lr=3e-3, batch_size=4, steps=6, checkpoint_every=100)
    with caplog.at_level(logging.WARNING):
        losses = train_adapter_stage(
            make_model(), clips, stage, DiffusionConfig(), 0, "test", data=data_config(copy, "stream"), failed=failed
        )
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert len(failed) == 1 and str(broken) in next(iter(failed))
    named = [r for r in caplog.records if str(broken) in r.getMessage()]
    assert len(named) == 1  # logged once, though every step drew it


def test_a_split_naming_a_missing_file_fails_before_decoding(training_videos, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(training_videos, copy)
    (copy / "videos" / "dog" / "v2.mp4").unlink()
    with pytest.raises(DataError, match=r"train.txt: names .*dog/v2.mp4, which does not exist"):
        load_split(copy, "train", data_config(copy, "stream"), tmp_path / "cache")


def test_an_unreadable_clip_is_reported_not_raised(training_videos, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(training_videos, copy)
    clips = load_split(copy, "train", data_config(copy, "stream"), tmp_path / "cache")
    (copy / "videos" / "cat" / "short.mp4").write_bytes(b"")
    item = WindowClips(clips.windows, 16000)[Draw(row=3, fraction=0.5, position=0, global_size=1)]
    assert "short.mp4" in item["failed"] and "frames" not in item
