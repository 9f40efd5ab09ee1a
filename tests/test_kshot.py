import pytest
import torch

from asva.data.dataset import ClipSet, kshot_indices
from asva.errors import DataError


def clipset(per_class: int, classes=("a", "b", "c")) -> ClipSet:
    labels = [c for c in classes for _ in range(per_class)]
    n = len(labels)
    return ClipSet(
        video_ids=[f"{label}_{i}" for i, label in enumerate(labels)],
        labels=labels,
        frames=torch.zeros(n, 1, 1, 1, 3, dtype=torch.uint8),
        audio=torch.zeros(n, 1),
        fbank=torch.zeros(n, 1, 1),
        event_times=[[] for _ in labels],
        classes=list(classes),
    )


def test_same_seed_same_subset_and_k_per_class():
    clips = clipset(20)
    first = kshot_indices(clips, 5, seed=3)
    assert first == kshot_indices(clips, 5, seed=3)
    assert sorted(clips.labels[i] for i in first) == ["a"] * 5 + ["b"] * 5 + ["c"] * 5


def test_seeds_draw_different_subsets():
    clips = clipset(20)
    assert kshot_indices(clips, 5, seed=0) != kshot_indices(clips, 5, seed=1)


def test_subsets_of_one_seed_are_nested():
    clips = clipset(20)
    k1, k5, k10 = (set(kshot_indices(clips, k, seed=7)) for k in (1, 5, 10))
    assert k1 < k5 < k10


def test_all_takes_the_whole_split():
    clips = clipset(4)
    assert kshot_indices(clips, None, seed=0) == list(range(12))


def test_k_larger_than_a_class_is_refused():
    with pytest.raises(DataError, match="k: 5 is larger than the 4"):
        kshot_indices(clipset(4), 5, seed=0)
