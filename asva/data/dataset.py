"""Datasets in the AVSync15 release layout (AVSync48 uses it too) and VGGSound, decoded once.

    <root>/classes.txt              one class name per line
    <root>/train.txt, test.txt      one `<class>/<id>.mp4` per line (paths under videos/)
    <root>/videos/<class>/<id>.mp4  video with its audio track (or a <id>.wav beside it)
    <root>/manifest.csv             optional: event times (the synthetic benchmark writes it)

VGGSound: a CSV of (youtube id, start second, label, split) and a folder of clips (`load_vggsound`).
A training split keeps its whole videos (`ClipSet.windows`): training draws a new uniformly placed
2-second clip from them at every step (asva/data/windows.py, docs/datasets.md).

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
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from asva.progress import progress

from asva.config.schema import DataConfig
from asva.data.audio import fbank
from asva.data.media import read_clip, read_video
from asva.data.windows import VideoWindows, concatenate_windows
from asva.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class ClipSet:
    """Decoded clips of one split: frames [N, T, H, W, 3] uint8, audio [N, S], fbank [N, F, mel].

    A training split also keeps its whole videos in `windows`, row for row; its `frames` are then one
    clip per video drawn once (seeded by the video id), for the parts that train on fixed clips.
    """

    video_ids: list[str]
    labels: list[str]
    frames: torch.Tensor
    audio: torch.Tensor
    fbank: torch.Tensor
    event_times: list[list[float]]
    classes: list[str]
    skipped: list[str] = field(default_factory=list)  # "path: reason" for each undecodable file
    starts: list[float] = field(default_factory=list)  # where each clip starts in its video (s)
    paths: list[str] = field(default_factory=list)  # each clip's video file
    windows: VideoWindows | None = None  # the whole videos training draws fresh clips from

    @classmethod
    def from_decoded(
        cls,
        video_ids: list[str],
        labels: list[str],
        frames: list[torch.Tensor],
        audio: list[torch.Tensor],
        event_times: list[list[float]],
        classes: list[str],
        skipped: list[str],
        sample_rate: int,
        starts: list[float] | None = None,
        paths: list[str] | None = None,
        windows: VideoWindows | None = None,
    ) -> "ClipSet":
        """Stack per-clip decodes into one set; the filterbanks are computed here, once."""
        audio_tensor = torch.stack(audio)
        return cls(
            video_ids=video_ids,
            labels=labels,
            frames=torch.stack(frames),
            audio=audio_tensor,
            fbank=fbank(audio_tensor, sample_rate),
            event_times=event_times,
            classes=classes,
            skipped=skipped,
            starts=starts or [],
            paths=paths or [],
            windows=windows,
        )

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
            starts=[self.starts[i] for i in indices] if self.starts else [],
            paths=[self.paths[i] for i in indices] if self.paths else [],
            windows=self.windows.subset(indices) if self.windows is not None else None,
        )


def read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: split file missing")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def read_event_times(root: Path) -> dict[str, list[float]]:
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        return {}
    with open(manifest, newline="") as handle:
        return {
            row["video_id"]: [float(t) for t in row["event_times"].split()]
            for row in csv.DictReader(handle)
        }


@dataclass(frozen=True)
class VideoEntry:
    """One video to decode: its id, class, file and the span of it to use (end None: to the end)."""

    video_id: str
    label: str
    path: Path
    start: float = 0.0
    end: float | None = None


# A training split's fixed clip of a video is drawn once from this seed and the video id, so every
# job (and the decoding cache) sees the same fixed clip of that video.
CLIP_START_SEED = 0
# A VGGSound label covers the 10 seconds from its start second.
VGGSOUND_SECONDS = 10.0


def _cache_key(
    name: str, entries: list[VideoEntry], data: DataConfig, stamp_file: Path, windows: bool, events: dict[str, list[float]]
) -> str:
    stamp = json.dumps(
        {
            "name": name,
            "fps": data.fps,
            "seconds": data.clip_seconds,
            "size": data.frame_size,
            "rate": data.sample_rate,
            "entries": [[e.video_id, e.label, str(e.path.resolve()), e.start, e.end] for e in entries],
            "mtime": stamp_file.stat().st_mtime_ns,
            "windows": windows,
            # The cached clips hold their event times: a manifest.csv added or changed later counts.
            "events": events,
            "version": 5,  # 5: event times of a clip are only those inside it
        },
        sort_keys=True,
    )
    return hashlib.sha256(stamp.encode()).hexdigest()[:16]


def _keeps_windows(split: str, data: DataConfig) -> bool:
    return split == "train" and data.train_clip_start == "uniform"


def load_split(root: str | Path, split: str, data: DataConfig, cache_dir: str | Path) -> ClipSet:
    """Decode (or load from the cache) every clip of `split` under `root` (AVSync15 layout)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data.root: {root} does not exist or is not a folder")
    classes = read_lines(root / "classes.txt")
    split_file = root / f"{split}.txt"
    entries = []
    for line in read_lines(split_file):
        label = line.split("/")[0]
        if label not in classes:
            raise DataError(f"{split_file}: class {label!r} of {line} is not in classes.txt")
        entries.append(VideoEntry(Path(line).stem, label, root / "videos" / line))
    events = read_event_times(root)
    name = f"{root.name}-{split}"
    return decode_entries(name, entries, classes, data, cache_dir, split_file, events, windows=_keeps_windows(split, data))


def read_vggsound_csv(path: Path) -> list[tuple[str, float, str, str]]:
    """Rows (youtube id, start second, label, split) of VGGSound's CSV (with or without a header)."""
    if not path.is_file():
        raise DataError(f"data.pool_csv: {path} does not exist")
    rows = []
    with open(path, newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 4:
                raise DataError(f"{path}:{number}: expected youtube id, start second, label, split; got {row}")
            try:
                start = float(row[1])
            except ValueError:
                if number == 1:
                    continue  # a header line
                raise DataError(f"{path}:{number}: start second {row[1]!r} is not a number") from None
            rows.append((row[0].strip(), start, row[2].strip(), row[3].strip()))
    return rows


def vggsound_clip(root: Path, youtube_id: str, start: float) -> tuple[Path, float] | None:
    """(file, offset of the wanted window in it) for a VGGSound row, or None if not downloaded.

    Clips cut to the labelled 10 s are named `<id>_<start:06d>.mp4` (start 0 within the file); a
    whole YouTube video named `<id>.mp4` is read from the labelled start second.
    """
    for folder in (root, root / "video", root / "videos", root / "clips"):
        for name in (f"{youtube_id}_{int(start):06d}", f"{youtube_id}_{int(start)}"):
            for suffix in VIDEO_SUFFIXES:
                if (folder / f"{name}{suffix}").is_file():
                    return folder / f"{name}{suffix}", 0.0
        for suffix in VIDEO_SUFFIXES:
            if (folder / f"{youtube_id}{suffix}").is_file():
                return folder / f"{youtube_id}{suffix}", start
    return None


VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")


def load_vggsound(root: str | Path, csv_path: str | Path, split: str, data: DataConfig, cache_dir: str | Path) -> ClipSet:
    """Decode the rows of `split` in VGGSound's CSV whose clips are under `root`.

    A row whose clip was never downloaded is skipped and named in `skipped`, as broken files are.
    """
    root = Path(root)
    csv_path = Path(csv_path) if Path(csv_path).is_absolute() else root / csv_path
    rows = [row for row in read_vggsound_csv(csv_path) if row[3] == split]
    if not rows:
        raise DataError(f"{csv_path}: no row of split {split!r}")
    classes = sorted({label for _, _, label, _ in rows})
    entries, missing = [], []
    for youtube_id, start, label, _ in rows:
        found = vggsound_clip(root, youtube_id, start)
        video_id = f"{youtube_id}_{int(start):06d}"
        if found is None:
            missing.append(f"{root / video_id}.mp4: not downloaded")
            continue
        path, offset = found
        # A whole YouTube video is used from its labelled start for the labelled 10 s.
        entries.append(VideoEntry(video_id, label, path, offset, offset + VGGSOUND_SECONDS if offset else None))
    return decode_entries(
        f"vggsound-{split}", entries, classes, data, cache_dir, csv_path, {}, missing, windows=_keeps_windows(split, data)
    )


def decode_entries(
    name: str,
    entries: list[VideoEntry],
    classes: list[str],
    data: DataConfig,
    cache_dir: str | Path,
    stamp_file: Path,
    events: dict[str, list[float]],
    skipped: list[str] | None = None,
    windows: bool = False,
) -> ClipSet:
    """Decode the clips of `entries` into one ClipSet, cached by their list and the decoding settings.

    With `windows`, each entry's whole span is kept for training to draw clips from, and the fixed
    clip is drawn from it uniformly; otherwise the clip starts at the entry's start.
    """
    skipped = list(skipped or [])
    cache = Path(cache_dir) / "decoded" / f"{name}-{_cache_key(name, entries, data, stamp_file, windows, events)}.pt"
    if cache.is_file():
        # Memory-mapped: a split of long videos at 256 px stays on disk until a batch reads it.
        return ClipSet(**torch.load(cache, weights_only=False, mmap=True))

    ids, labels, frames, audio, event_times, starts, paths = [], [], [], [], [], [], []
    videos, fixed_starts = [], []  # with windows: whole videos, and the frame each fixed clip starts at
    clip_frames = round(data.clip_seconds * data.fps)
    for entry in progress(entries, desc=f"decoding {name}", unit="video"):
        try:
            if windows:
                video = read_video(entry.path, data.fps, data.clip_seconds, data.frame_size, data.sample_rate, entry.start, entry.end)
                first = _fixed_start(entry.video_id, len(video.frames), clip_frames)
                start = video.start + first / data.fps
            else:
                clip = read_clip(entry.path, data.fps, data.clip_seconds, data.frame_size, data.sample_rate, entry.start)
                start = clip.start
        except DataError as error:
            skipped.append(str(error))
            log.warning("skipping %s", error)
            continue
        ids.append(entry.video_id)
        labels.append(entry.label)
        if windows:
            videos.append(video)
            fixed_starts.append(first)
        else:
            frames.append(torch.from_numpy(clip.frames))
            audio.append(torch.from_numpy(clip.audio))
        shifted = [round(t - start, 4) for t in events.get(entry.video_id, [])]
        event_times.append([t for t in shifted if 0 <= t < data.clip_seconds])  # the clip's own events
        starts.append(start)
        paths.append(str(entry.path))
    if not ids:
        raise DataError(f"{name}: no decodable video ({len(skipped)} skipped)")
    whole = None
    if windows:
        video_frames = [torch.from_numpy(v.frames) for v in videos]
        video_audio = [torch.from_numpy(v.audio) for v in videos]
        whole = VideoWindows.from_videos(video_frames, video_audio, [v.start for v in videos], clip_frames, data.fps, data.sample_rate)
        fixed_frames, fixed_audio = whole.clips(torch.arange(len(videos)), torch.tensor(fixed_starts))
        frames, audio = list(fixed_frames), list(fixed_audio)
    clips = ClipSet.from_decoded(
        ids, labels, frames, audio, event_times, classes, skipped, data.sample_rate, starts=starts, paths=paths, windows=whole
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.partial")
    torch.save(clips.__dict__, tmp)
    tmp.replace(cache)
    return clips


def _fixed_start(video_id: str, num_frames: int, clip_frames: int) -> int:
    """The frame a video's fixed clip starts at: drawn uniformly over the frame grid by its id."""
    rng = np.random.default_rng([CLIP_START_SEED, zlib.crc32(video_id.encode())])
    return int(rng.integers(0, num_frames - clip_frames + 1))


def concatenate(first: ClipSet, second: ClipSet) -> ClipSet:
    """The clips of both sets, in order (same decoding settings and class list; both with whole
    videos or neither)."""
    if (first.windows is None) != (second.windows is None):
        raise ValueError("cannot concatenate a set with whole videos and one without")
    return ClipSet(
        video_ids=first.video_ids + second.video_ids,
        labels=first.labels + second.labels,
        frames=torch.cat([first.frames, second.frames]),
        audio=torch.cat([first.audio, second.audio]),
        fbank=torch.cat([first.fbank, second.fbank]),
        event_times=first.event_times + second.event_times,
        classes=first.classes,
        skipped=first.skipped + second.skipped,
        starts=first.starts + second.starts,
        paths=first.paths + second.paths,
        windows=concatenate_windows(first.windows, second.windows) if first.windows is not None else None,
    )


def load_pool(data: DataConfig, root: Path, cache_dir: str | Path) -> ClipSet:
    """The pretraining pool: its training split, in the layout `data.pool_format` names."""
    if data.pool_format == "vggsound":
        if data.pool_csv is None:
            raise DataError("data.pool_csv: a VGGSound pool needs the path of its CSV")
        return load_vggsound(root, data.pool_csv, "train", data, cache_dir)
    return load_split(root, "train", data, cache_dir)


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
