"""Datasets in the AVSync15 release layout (AVSync48 uses it too) and VGGSound, decoded once.

    <root>/classes.txt              one class name per line
    <root>/train.txt, test.txt      one `<class>/<id>.mp4` per line (paths under videos/)
    <root>/videos/<class>/<id>.mp4  video with its audio track (or a <id>.wav beside it)
    <root>/manifest.csv             optional: event times (the synthetic benchmark writes it)

VGGSound: a CSV of (youtube id, start second, label, split) and a folder of clips (`load_vggsound`).
A training split keeps its whole videos (`ClipSet.windows`): training draws a new uniformly placed
2-second clip from them at every step (asva/data/loader.py, docs/datasets.md).

`data.decode` says how: real datasets (and pools of any size) stream, each drawn clip decoded from
its file by DataLoader workers (asva/data/streaming.py), nothing held in memory; the small synthetic
benchmark is decoded once into a tensor file (asva/data/windows.py) keyed by its files (sizes and
modification times) and the decoding settings. Test splits are decoded once and cached the same way.
A manifest naming a missing file fails before any compute; a file that cannot be decoded is skipped,
named in a warning and counted (`ClipSet.skipped`), never a crash in the middle of a sweep.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from asva.config.schema import DataConfig
from asva.data import sources
from asva.data.audio import fbank
from asva.data.curated_manifest import read_curated_manifest
from asva.data.leakcheck import LeakMatch, evaluation_videos, find_leak_matches
from asva.data.loader import Draw, WindowClips, collate
from asva.data.media import read_clip, read_video
from asva.data.streaming import StreamedWindows
from asva.data.windows import VideoWindows, concatenate_windows
from asva.errors import DataError
from asva.files import save_torch
from asva.progress import progress

log = logging.getLogger(__name__)


@dataclass
class ClipSet:
    """Clips of one split: frames [N, T, H, W, 3] uint8, audio [N, S], fbank [N, F, mel].

    A training split also keeps its whole videos in `windows`, row for row; its `frames` are then one
    clip per video drawn once (seeded by the video id), for the parts that train on fixed clips. A
    streamed split (`windows` a StreamedWindows) holds no tensors: `decoded()` decodes its fixed clips
    for the few parts that need them in memory (the stand-ins of the embedded default).
    """

    video_ids: list[str]
    labels: list[str]
    frames: torch.Tensor | None
    audio: torch.Tensor | None
    fbank: torch.Tensor | None
    event_times: list[list[float]]
    classes: list[str]
    skipped: list[str] = field(default_factory=list)  # "path: reason" for each undecodable file
    starts: list[float] = field(default_factory=list)  # where each clip starts in its video (s)
    paths: list[str] = field(default_factory=list)  # each clip's video file
    windows: VideoWindows | StreamedWindows | None = None  # the whole videos training draws fresh clips from
    source: str = ""  # identifies the files and decoding settings (the cache key): what fingerprints hash

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
    ) -> ClipSet:
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

    @property
    def streamed(self) -> bool:
        return isinstance(self.windows, StreamedWindows)

    def subset(self, indices: list[int]) -> ClipSet:
        index = torch.as_tensor(indices, dtype=torch.long)
        return ClipSet(
            video_ids=[self.video_ids[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            frames=None if self.frames is None else self.frames[index],
            audio=None if self.audio is None else self.audio[index],
            fbank=None if self.fbank is None else self.fbank[index],
            event_times=[self.event_times[i] for i in indices],
            classes=self.classes,
            skipped=self.skipped,
            starts=[self.starts[i] for i in indices] if self.starts else [],
            paths=[self.paths[i] for i in indices] if self.paths else [],
            windows=self.windows.subset(indices) if self.windows is not None else None,
            source=self.source,
        )

    def decoded(self, workers: int = 0) -> ClipSet:
        """This set with its fixed clips in memory (itself when it has them): a streamed set decodes
        one clip per video (the clip `fixed_fraction` places), by `workers` DataLoader processes.
        A video that cannot be read is left out, named in `skipped`."""
        if self.frames is not None:
            return self
        draws = [Draw(row, fixed_fraction(video_id), row, len(self)) for row, video_id in enumerate(self.video_ids)]
        loader = torch.utils.data.DataLoader(
            WindowClips(self.windows, self.windows.sample_rate),
            batch_size=ENCODE_BATCH,
            collate_fn=collate,
            num_workers=workers,
            sampler=draws,
        )
        batches = list(progress(loader, desc=f"decoding the fixed clips of {len(self)} videos", unit="batch"))
        rows = torch.cat([batch.rows for batch in batches]).tolist()
        kept = self.subset(rows)
        kept.frames = torch.cat([batch.frames for batch in batches if batch.frames is not None])
        kept.audio = torch.cat([batch.audio for batch in batches if batch.audio is not None])
        kept.fbank = torch.cat([batch.fbank for batch in batches if batch.fbank is not None])
        kept.skipped = self.skipped + [failure for batch in batches for failure in batch.failed]
        return kept


def read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: split file missing")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def read_event_times(root: Path) -> dict[str, list[float]]:
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        return {}
    with open(manifest, newline="") as handle:
        return {row["video_id"]: [float(t) for t in row["event_times"].split()] for row in csv.DictReader(handle)}


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
ENCODE_BATCH = 32  # clips per batch when a streamed set's fixed clips are decoded
# A VGGSound label covers the 10 seconds from its start second.
VGGSOUND_SECONDS = 10.0
# Part of the decoding cache's key: bump it when the same files and settings would decode to other clips.
DECODED_CACHE_VERSION = 6  # 6: fixed clips placed by `fixed_fraction`; files identified by size and time


def _cache_key(
    name: str,
    entries: list[VideoEntry],
    data: DataConfig,
    stamp_file: Path,
    windows: bool,
    events: dict[str, list[float]],
) -> str:
    stamp = json.dumps(
        {
            # Each file's size and modification time: a video replaced in place counts.
            "files": [_file_identity(e.path) for e in entries],
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
            "version": DECODED_CACHE_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(stamp.encode()).hexdigest()[:16]


def _file_identity(path: Path) -> list:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _keeps_windows(split: str, data: DataConfig) -> bool:
    return split == "train" and data.train_clip_start == "uniform"


def streams(data: DataConfig) -> bool:
    """Whether training videos are read from their files clip by clip (`data.decode`)."""
    return data.decode == "stream" or (data.decode == "auto" and data.name != "synthetic")


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
    require_files(entries, split_file)
    events = read_event_times(root)
    name = f"{root.name}-{split}"
    return decode_entries(
        name, entries, classes, data, cache_dir, split_file, events, windows=_keeps_windows(split, data)
    )


def require_files(entries: list[VideoEntry], manifest: Path) -> None:
    """DataError naming the first file of `manifest` that does not exist, before any decoding."""
    missing = [entry.path for entry in entries if not entry.path.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"{manifest}: names {missing[0]}, which does not exist{more}")


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


def load_vggsound(
    root: str | Path, csv_path: str | Path, split: str, data: DataConfig, cache_dir: str | Path
) -> ClipSet:
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
        f"vggsound-{split}",
        entries,
        classes,
        data,
        cache_dir,
        csv_path,
        {},
        missing,
        windows=_keeps_windows(split, data),
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
    key = _cache_key(name, entries, data, stamp_file, windows, events)
    if windows and streams(data):
        return _streamed(entries, classes, data, skipped, f"stream-{key}")
    cache = Path(cache_dir) / "decoded" / f"{name}-{key}.pt"
    if cache.is_file():
        # Memory-mapped: a split of long videos at 256 px stays on disk until a batch reads it.
        return ClipSet(**torch.load(cache, weights_only=False, mmap=True))

    ids, labels, frames, audio, event_times, starts, paths = [], [], [], [], [], [], []
    videos, fixed_starts = [], []  # with windows: whole videos, and the frame each fixed clip starts at
    clip_frames = round(data.clip_seconds * data.fps)
    for entry in progress(entries, desc=f"decoding {name}", unit="video"):
        try:
            if windows:
                video = read_video(
                    entry.path, data.fps, data.clip_seconds, data.frame_size, data.sample_rate, entry.start, entry.end
                )
                first = int(fixed_fraction(entry.video_id) * (len(video.frames) - clip_frames + 1))
                start = video.start + first / data.fps
            else:
                clip = read_clip(
                    entry.path, data.fps, data.clip_seconds, data.frame_size, data.sample_rate, entry.start
                )
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
        whole = VideoWindows.from_videos(
            video_frames, video_audio, [v.start for v in videos], clip_frames, data.fps, data.sample_rate
        )
        fixed_frames, fixed_audio = whole.clips(torch.arange(len(videos)), torch.tensor(fixed_starts))
        frames, audio = list(fixed_frames), list(fixed_audio)
    clips = ClipSet.from_decoded(
        ids,
        labels,
        frames,
        audio,
        event_times,
        classes,
        skipped,
        data.sample_rate,
        starts=starts,
        paths=paths,
        windows=whole,
    )
    clips.source = key
    save_torch(cache, clips.__dict__)
    return clips


def fixed_fraction(video_id: str) -> float:
    """Where a video's fixed clip starts, in [0, 1) of its allowed starts: drawn by its id."""
    return float(np.random.default_rng([CLIP_START_SEED, zlib.crc32(video_id.encode())]).random())


def _streamed(
    entries: list[VideoEntry], classes: list[str], data: DataConfig, skipped: list[str], source: str
) -> ClipSet:
    """A training split read from its files when a batch draws a clip: nothing is decoded here."""
    if not entries:
        raise DataError(f"{source}: no video to train on ({len(skipped)} skipped)")
    windows = StreamedWindows(
        paths=[str(e.path) for e in entries],
        span_start=[e.start for e in entries],
        span_end=[e.end for e in entries],
        clip_frames=round(data.clip_seconds * data.fps),
        fps=data.fps,
        sample_rate=data.sample_rate,
        frame_size=data.frame_size,
    )
    return ClipSet(
        video_ids=[e.video_id for e in entries],
        labels=[e.label for e in entries],
        frames=None,
        audio=None,
        fbank=None,
        event_times=[[] for _ in entries],
        classes=classes,
        skipped=skipped,
        starts=[e.start for e in entries],
        paths=[str(e.path) for e in entries],
        windows=windows,
        source=source,
    )


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
        source=f"{first.source}+{second.source}",
    )


def job_pool(data: DataConfig, benchmark: Path, cache_dir: str | Path) -> tuple[ClipSet | None, list[LeakMatch]]:
    """(a job's pretraining pool, the videos removed from it), the pool None when the configuration
    names none. The pool is the curated manifest `data.pool_manifest` (sweeps/curate.py), else the
    pool folder (asva/data/sources.py), less every video holding footage of an evaluation video of a
    benchmark `data.leak_check_against` names (asva/data/leakcheck.py). Every entry point that
    builds a job's model reads its pool here, so they all train the frozen stand-ins on one pool."""
    if data.pool_manifest is not None:
        pool = load_curated_pool(data, Path(data.pool_manifest).expanduser(), cache_dir)
    else:
        root = sources.pool_root(data, benchmark)
        if root is None:
            return None, []
        pool = load_pool(data, root, cache_dir)
    evaluation = evaluation_videos(data.leak_check_against, data, Path(cache_dir))
    leaks = find_leak_matches(list(zip(pool.video_ids, pool.paths)), evaluation, Path(cache_dir) / "leakcheck")
    if not leaks:
        return pool, []
    log.warning(
        "leak check: %d pool video(s) hold footage of an evaluation video and are removed: %s",
        len(leaks),
        ", ".join(sorted(leaks)[:10]),
    )
    kept = pool.subset([i for i, video_id in enumerate(pool.video_ids) if video_id not in leaks])
    return kept, list(leaks.values())


def load_curated_pool(data: DataConfig, manifest: Path, cache_dir: str | Path) -> ClipSet:
    """The videos of a curated manifest, each drawn from its kept segment; every file checked first."""
    rows, classes = read_curated_manifest(manifest)
    entries = [VideoEntry(row.video_id, row.label, row.path, row.start, row.end) for row in rows]
    return decode_entries(f"curated-{manifest.stem}", entries, classes, data, cache_dir, manifest, {}, windows=True)


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
            raise DataError(f"k: {k} is larger than the {len(members)} training videos of class {label!r}")
        order = np.random.default_rng([seed, class_index]).permutation(len(members))
        chosen.extend(int(i) for i in members[order[:k]])
    return sorted(chosen)


def min_videos_per_class(clips: ClipSet) -> int:
    counts = [clips.labels.count(label) for label in clips.classes if label in clips.labels]
    return min(counts)
