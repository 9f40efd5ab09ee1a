"""Datasets in the AVSync15 release layout, decoded once into tensors.

    <root>/classes.txt              one class name per line
    <root>/train.txt, test.txt      one `<class>/<id>.mp4` per line (paths under videos/)
    <root>/videos/<class>/<id>.mp4  video with its audio track
    <root>/manifest.csv             optional: event times (the synthetic benchmark writes it)

Decoding is the slow part, so a split is decoded once and cached as a tensor file keyed by the
folder, the split and the decoding settings. A file that cannot be decoded is skipped, named in a
warning and counted (`ClipSet.skipped`), never a crash in the middle of a sweep.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from asva.progress import progress

from asva.config.schema import DataConfig
from asva.data.audio import fbank
from asva.data.media import read_clip
from asva.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class ClipSet:
    """Decoded clips of one split: frames [N, T, H, W, 3] uint8, audio [N, S], fbank [N, F, mel]."""

    video_ids: list[str]
    labels: list[str]
    frames: torch.Tensor
    audio: torch.Tensor
    fbank: torch.Tensor
    event_times: list[list[float]]
    classes: list[str]
    skipped: list[str] = field(default_factory=list)  # "path: reason" for each undecodable file

    def __len__(self) -> int:
        return len(self.video_ids)

    def label_indices(self) -> torch.Tensor:
        return torch.tensor([self.classes.index(label) for label in self.labels])

    def subset(self, indices: list[int]) -> "ClipSet":
        index = torch.as_tensor(indices, dtype=torch.long)
        return ClipSet(
            video_ids=[self.video_ids[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            frames=self.frames[index],
            audio=self.audio[index],
            fbank=self.fbank[index],
            event_times=[self.event_times[i] for i in indices],
            classes=self.classes,
            skipped=self.skipped,
        )


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: split file missing")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _read_event_times(root: Path) -> dict[str, list[float]]:
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        return {}
    with open(manifest, newline="") as handle:
        return {
            row["video_id"]: [float(t) for t in row["event_times"].split()]
            for row in csv.DictReader(handle)
        }


def _cache_key(root: Path, split: str, data: DataConfig, entries: list[str]) -> str:
    stamp = json.dumps(
        {
            "root": str(root.resolve()),
            "split": split,
            "fps": data.fps,
            "seconds": data.clip_seconds,
            "size": data.frame_size,
            "rate": data.sample_rate,
            "entries": entries,
            "mtime": (root / f"{split}.txt").stat().st_mtime_ns,
            "version": 2,
        },
        sort_keys=True,
    )
    return hashlib.sha256(stamp.encode()).hexdigest()[:16]


def load_split(root: str | Path, split: str, data: DataConfig, cache_dir: str | Path) -> ClipSet:
    """Decode (or load from the cache) every clip of `split` under `root`."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data.root: {root} does not exist or is not a folder")
    classes = _read_lines(root / "classes.txt")
    entries = _read_lines(root / f"{split}.txt")
    cache = Path(cache_dir) / "decoded" / f"{root.name}-{split}-{_cache_key(root, split, data, entries)}.pt"
    if cache.is_file():
        return ClipSet(**torch.load(cache, weights_only=False))

    events = _read_event_times(root)
    ids, labels, frames, audio, event_times, skipped = [], [], [], [], [], []
    for entry in progress(entries, desc=f"decoding {root.name}/{split}", unit="video"):
        label = entry.split("/")[0]
        video_id = Path(entry).stem
        if label not in classes:
            raise DataError(f"{root / f'{split}.txt'}: class {label!r} of {entry} is not in classes.txt")
        try:
            clip = read_clip(root / "videos" / entry, data.fps, data.clip_seconds, data.frame_size, data.sample_rate)
        except DataError as error:
            skipped.append(str(error))
            log.warning("skipping %s", error)
            continue
        ids.append(video_id)
        labels.append(label)
        frames.append(torch.from_numpy(clip.frames))
        audio.append(torch.from_numpy(clip.audio))
        event_times.append(events.get(video_id, []))
    if not ids:
        raise DataError(f"{root}: no decodable video in {split}.txt ({len(skipped)} skipped)")
    audio_tensor = torch.stack(audio)
    clips = ClipSet(
        video_ids=ids,
        labels=labels,
        frames=torch.stack(frames),
        audio=audio_tensor,
        fbank=fbank(audio_tensor, data.sample_rate),
        event_times=event_times,
        classes=classes,
        skipped=skipped,
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.partial")
    torch.save(clips.__dict__, tmp)
    tmp.replace(cache)
    return clips


def kshot_indices(clips: ClipSet, k: int | None, seed: int) -> list[int]:
    """K clips per class chosen by `seed`; nested (K=1 lies inside K=5 for the same seed).

    `k=None` takes the whole split. Raises DataError when a class has fewer than K clips.
    """
    if k is None:
        return list(range(len(clips)))
    chosen: list[int] = []
    for class_index, label in enumerate(clips.classes):
        members = np.array([i for i, lab in enumerate(clips.labels) if lab == label])
        if len(members) == 0:
            continue
        if k > len(members):
            raise DataError(
                f"k: {k} is larger than the {len(members)} training videos of class {label!r}"
            )
        order = np.random.default_rng([seed, class_index]).permutation(len(members))
        chosen.extend(int(i) for i in members[order[:k]])
    return sorted(chosen)


def min_videos_per_class(clips: ClipSet) -> int:
    counts = [clips.labels.count(label) for label in clips.classes if label in clips.labels]
    return min(counts)
