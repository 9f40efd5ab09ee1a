"""The synchronization classifier: shapes, shifted training windows, a tiny training, its checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asva.config.schema import SyncClassifierConfig
from asva.data.audio import fbank
from asva.data.dataset import ClipSet
from asva.data.synthetic import CLASSES, render_frames, sample_event_times, synthesize_audio
from asva.errors import DataError
from asva.evaluation.networks import train_sync_classifier
from asva.evaluation.sync_classifier import (
    ShiftWindows,
    SyncClassifier,
    SyncClassifierShape,
    load_sync_classifier,
    shifted_logits,
    sync_scores,
    video_tensor,
)
from asva.evaluation.sync_metrics import relsync
from asva.files import save_torch

SMALL = SyncClassifierShape(video_widths=[8, 16], audio_widths=[8, 16], head_dim=16)


def synthetic_clips(count: int, seed: int) -> ClipSet:
    """Clips of the embedded benchmark's classes, rendered in memory (no files)."""
    rng = np.random.default_rng(seed)
    labels = [list(CLASSES)[i % 4] for i in range(count)]
    frames, audio, times = [], [], []
    for label in labels:
        events = sample_event_times(rng, 2.0)
        frames.append(render_frames(CLASSES[label], events, 6, 2.0, 32, rng))
        audio.append(synthesize_audio(CLASSES[label], events, 2.0, 16000, rng))
        times.append(events)
    audio_tensor = torch.from_numpy(np.stack(audio))
    return ClipSet(
        video_ids=[f"clip{i}" for i in range(count)],
        labels=labels,
        frames=torch.from_numpy(np.stack(frames)),
        audio=audio_tensor,
        fbank=fbank(audio_tensor),
        event_times=times,
        classes=sorted(set(labels)),
    )


def test_forward_gives_one_score_per_pair_for_windows_and_whole_clips():
    classifier = SyncClassifier(SMALL).eval()
    assert classifier(
        torch.randn(3, 198, 128), video_tensor(torch.zeros(3, 12, 32, 32, 3, dtype=torch.uint8))
    ).shape == (3,)
    assert classifier(
        torch.randn(2, 100, 128), video_tensor(torch.zeros(2, 6, 32, 32, 3, dtype=torch.uint8))
    ).shape == (2,)


def test_shifted_windows_come_from_the_same_clip_at_each_shift():
    windows = ShiftWindows.from_seconds(1.0, 1 / 3, 6, 12)
    assert (windows.window_frames, windows.max_shift) == (6, 2)
    frames = torch.arange(12, dtype=torch.uint8).reshape(1, 12, 1, 1, 1).expand(2, 12, 4, 4, 3).contiguous()
    audio, videos = windows.candidates(torch.randn(2, 198, 128), frames, torch.tensor([2, 4]))
    assert audio.shape == (2, 100, 128) and videos.shape == (2, 5, 3, 6, 4, 4)
    first_frames = ((videos[:, :, 0, 0, 0, 0] + 1) * 127.5).round()
    assert first_frames.tolist() == [[0, 1, 2, 3, 4], [2, 3, 4, 5, 6]]
    with pytest.raises(ValueError):
        ShiftWindows.from_seconds(1.5, 0.5, 6, 12)


def test_a_few_training_steps_rank_aligned_above_shifted_pairs():
    train, test = synthetic_clips(32, seed=0), synthetic_clips(16, seed=1)
    config = SyncClassifierConfig(
        video_widths=SMALL.video_widths, audio_widths=SMALL.audio_widths, head_dim=16, steps=40, lr=3e-3, batch_size=8
    )
    payload = train_sync_classifier(train, test, config, fps=6, dataset="synthetic")
    assert payload["test_accuracy"] > 2 * payload["chance"]
    classifier = SyncClassifier(SyncClassifierShape(**payload["shape"]))
    classifier.load_state_dict(payload["weights"])
    aligned = sync_scores(classifier, test.fbank, test.frames)
    shifted = sync_scores(classifier, test.fbank, torch.roll(test.frames, 3, dims=1))
    static = sync_scores(classifier, test.fbank, test.frames[:, :1].expand(-1, 12, -1, -1, -1))
    assert (aligned > shifted).mean() >= 0.7 and (aligned > static).mean() >= 0.7
    assert relsync(aligned, aligned).mean() == pytest.approx(100.0)
    assert relsync(shifted, aligned).mean() < 100 and relsync(static, aligned).mean() < 100


def test_checkpoint_round_trip_and_errors(tmp_path):
    classifier = SyncClassifier(SMALL).eval()
    path = tmp_path / "sync.pt"
    windows = ShiftWindows.from_seconds(1.0, 1 / 3, 6, 12)
    from asva.evaluation.sync_classifier import checkpoint_payload

    save_torch(path, checkpoint_payload(classifier, windows, "avsync15", {"test_accuracy": 0.4}))
    loaded, payload = load_sync_classifier(path)
    assert payload["dataset"] == "avsync15"
    audio, videos = windows.candidates(
        torch.randn(1, 198, 128), torch.zeros(1, 12, 32, 32, 3, dtype=torch.uint8), torch.tensor([2])
    )
    assert torch.allclose(shifted_logits(loaded, audio, videos), shifted_logits(classifier, audio, videos))
    with pytest.raises(DataError, match="does not exist"):
        load_sync_classifier(tmp_path / "absent.pt")
    save_torch(tmp_path / "other.pt", {"weights": {}})
    with pytest.raises(DataError, match="not a synchronization classifier"):
        load_sync_classifier(tmp_path / "other.pt")
