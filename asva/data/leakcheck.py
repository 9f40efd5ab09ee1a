"""No evaluation clip in the pretraining pool: pool videos holding a test video's footage are found
by content and removed.

AVSync15 and AVSync48 test videos are cut from VGGSound at other start times and under other ids,
so neither the id nor the first frame tells a pool video that holds one. Each video is fingerprinted
frame by frame: a 64-bit DCT perceptual hash (pHash) of the grayscale 32x32 centre square, blind to
re-encoding, rescaling and the crop to a square, and an 8x8 colour thumbnail of the same square
(pHash sees no colour: two differently coloured objects at the same place hash alike). Test videos
are fingerprinted at up to `TEST_STEP_S` intervals (every frame of a 6- or 12-FPS video), pool videos
every `POOL_STEP_S`. A pool frame matches a test frame when their hashes differ by at most
`MAX_HAMMING` bits and their thumbnails by at most `MAX_COLOUR` levels on average; a pool video holds
a test video when at least `MIN_MATCHES` of its sampled frames match frames of that test video at
one time offset (within the test video's frame interval), i.e. the footage runs in step.
Frames without structure (black, flat) are not fingerprinted: they match anything.

Fingerprints are cached per file under `<cache_dir>/leakcheck/`, keyed by the file's path, size and
modification time, so a pool of 150K videos is decoded for this once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asva.config.schema import DataConfig
from asva.cpus import usable_cpus
from asva.errors import DataError
from asva.files import atomic_open, write_csv
from asva.progress import progress

log = logging.getLogger(__name__)

DECODE_SIDE = 64  # frames are decoded at most this large: the hash sees 32x32
HASH_SIDE = 32
HASH_LOW = 8  # the 8x8 lowest DCT frequencies: 64 bits
COLOUR_SIDE = 8
MIN_STRUCTURE = 3.0  # grayscale std (0-255) of the 32x32 square below which a frame is flat
POOL_STEP_S = 0.5
TEST_STEP_S = 1 / 30  # every frame up to 30 FPS: a pool sample is at most 1/60 s from a test frame
# Measured on the embedded benchmark (docs/curation.md): of 48 test videos spliced 1 s into other
# footage, all are found when re-encoded at CRF 8, or at CRF 32 and 2.5x larger (their matching
# frames differ by 0-4 bits, 1% by 18 or more, and by <= 2.8 colour levels); 41 of 48 when shrunk
# to 20 px, below the hash's 32. None of the 240 pool videos matches a test video (with hashes
# within 22 bits, the first unrelated match appears at 4.5 colour levels).
MAX_HAMMING = 20
MAX_COLOUR = 4.0
MIN_MATCHES = 3
OFFSET_SLACK_S = 0.05
CACHE_VERSION = 1


@dataclass
class Fingerprint:
    """Per sampled frame with structure: its time (s from the first frame), pHash and thumbnail."""

    times: np.ndarray  # [K] float64
    hashes: np.ndarray  # [K] uint64
    colours: np.ndarray  # [K, COLOUR_SIDE * COLOUR_SIDE * 3] uint8
    duration: float  # of the whole video, s


@dataclass(frozen=True)
class LeakMatch:
    """A pool video found to hold a test video's footage from `offset` s on."""

    pool_id: str
    pool_path: str
    test_id: str
    test_path: str
    offset: float  # pool time minus test time of the matching frames
    frames: int  # pool frames that match at that offset
    hamming: float  # their mean hash distance, bits


def _centre_square(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return np.ascontiguousarray(frame[top : top + side, left : left + side])


def frame_signature(frame: np.ndarray) -> tuple[np.uint64, np.ndarray] | None:
    """(pHash, flattened colour thumbnail) of an RGB frame [H, W, 3] uint8; None when it is flat."""
    import cv2
    from scipy.fft import dctn

    square = _centre_square(frame)
    grey = cv2.resize(cv2.cvtColor(square, cv2.COLOR_RGB2GRAY), (HASH_SIDE, HASH_SIDE), interpolation=cv2.INTER_AREA)
    grey = grey.astype(np.float32)
    if grey.std() < MIN_STRUCTURE:
        return None
    low = dctn(grey, norm="ortho")[:HASH_LOW, :HASH_LOW].ravel()
    bits = np.packbits(low > np.median(low))
    colour = cv2.resize(square, (COLOUR_SIDE, COLOUR_SIDE), interpolation=cv2.INTER_AREA)
    return np.uint64(int.from_bytes(bits.tobytes(), "big")), colour.ravel()


def fingerprint(path: str | Path, step: float) -> Fingerprint:
    """Fingerprint of the frames nearest to every `step` seconds of a video (DataError if unreadable)."""
    from asva.data.media import read_frames

    times, frames = read_frames(path, DECODE_SIDE)
    grid = np.arange(0.0, times[-1] + 1e-6, step)
    picks = np.unique(np.abs(times[None, :] - grid[:, None]).argmin(axis=1))
    interval = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    kept_times, hashes, colours = [], [], []
    for index in picks:
        signature = frame_signature(frames[index])
        if signature is not None:
            kept_times.append(times[index])
            hashes.append(signature[0])
            colours.append(signature[1])
    return Fingerprint(
        times=np.asarray(kept_times, dtype=np.float64),
        hashes=np.asarray(hashes, dtype=np.uint64),
        colours=np.asarray(colours, dtype=np.uint8).reshape(len(kept_times), COLOUR_SIDE * COLOUR_SIDE * 3),
        duration=float(times[-1] + interval),
    )


def _cache_file(path: Path, step: float, cache_dir: Path) -> Path:
    stat = path.stat()
    identity = json.dumps([os.path.abspath(path), stat.st_size, stat.st_mtime_ns, step, CACHE_VERSION])
    key = hashlib.sha256(identity.encode()).hexdigest()
    return cache_dir / "leakcheck" / key[:2] / f"{key}.npz"


def cached_fingerprint(path: str | Path, step: float, cache_dir: Path | None) -> Fingerprint:
    """`fingerprint`, read from or written to the cache when there is one."""
    path = Path(path)
    if cache_dir is None:
        return fingerprint(path, step)
    try:
        cached = _cache_file(path, step, Path(cache_dir))
    except OSError as error:
        raise DataError(f"{path}: {error.strerror}") from None
    if cached.is_file():
        with np.load(cached) as stored:
            return Fingerprint(stored["times"], stored["hashes"], stored["colours"], float(stored["duration"]))
    result = fingerprint(path, step)
    with atomic_open(cached, "wb") as handle:  # concurrent shards may write the same entry
        np.savez(handle, times=result.times, hashes=result.hashes, colours=result.colours, duration=result.duration)
    return result


def _is_cached(path: str | Path, step: float, cache_dir: Path | None) -> bool:
    try:
        return cache_dir is not None and _cache_file(Path(path), step, Path(cache_dir)).is_file()
    except OSError:  # a missing file: `cached_fingerprint` reports it
        return False


def _fingerprint_or_error(path: str, step: float, cache_dir: Path | None) -> Fingerprint | str:
    import cv2

    cv2.setNumThreads(1)  # the process pool is the parallelism
    try:
        return cached_fingerprint(path, step, cache_dir)
    except DataError as error:
        return str(error)


def fingerprints(
    jobs: Sequence[tuple[str | Path, float]], cache_dir: Path | None, workers: int | None
) -> Iterator[Fingerprint | str]:
    """Fingerprint (or the DataError message of an unreadable file) of each (path, step), in order,
    `workers` at a time. Cached fingerprints are read here: a pool is started only for videos to
    decode (spawning one costs each job seconds of imports, for reading files it does not need to)."""
    workers = min(workers or usable_cpus(), sum(not _is_cached(path, step, cache_dir) for path, step in jobs))
    with progress(desc=f"leak check: fingerprinting {len(jobs)} videos", total=len(jobs), unit="video") as bar:
        if workers <= 1:
            for path, step in jobs:
                yield _fingerprint_or_error(str(path), step, cache_dir)
                bar.update(1)
            return
        # spawn, not fork: a forked copy of a process running torch's thread pools can deadlock.
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            paths, steps = [str(path) for path, _ in jobs], [step for _, step in jobs]
            for result in pool.map(_fingerprint_or_error, paths, steps, [cache_dir] * len(jobs), chunksize=8):
                yield result
                bar.update(1)
        finally:  # a consumer that stops early (a broken test video) does not wait for the rest
            pool.shutdown(cancel_futures=True)


class EvaluationIndex:
    """Every fingerprinted frame of the test videos, concatenated for vectorised matching."""

    def __init__(self, paths: Sequence[str | Path], prints: Sequence[Fingerprint]):
        self.paths = [str(p) for p in paths]
        self.ids = [Path(p).stem for p in paths]
        self.owner = np.concatenate([np.full(len(f.times), i) for i, f in enumerate(prints)] or [np.zeros(0, int)])
        self.times = np.concatenate([f.times for f in prints] or [np.zeros(0)])
        self.hashes = np.concatenate([f.hashes for f in prints] or [np.zeros(0, np.uint64)])
        self.colours = np.concatenate([f.colours for f in prints] or [np.zeros((0, 1), np.uint8)]).astype(np.int16)
        # Matching frames of one copy agree on the offset to within the test video's frame interval.
        self.tolerance = np.asarray([_interval(f) + OFFSET_SLACK_S for f in prints])
        # A short test video spans fewer pool samples than MIN_MATCHES.
        self.required = np.asarray([min(MIN_MATCHES, max(1, int(f.duration / POOL_STEP_S))) for f in prints])

    def __len__(self) -> int:
        return len(self.hashes)


def _interval(print_: Fingerprint) -> float:
    return float(np.median(np.diff(print_.times))) if len(print_.times) > 1 else TEST_STEP_S


def match(pool: Fingerprint, index: EvaluationIndex, pool_id: str = "", pool_path: str = "") -> LeakMatch | None:
    """The test video whose footage `pool` holds (most matching frames), or None."""
    if not len(pool.times) or not len(index):
        return None
    pairs_j, pairs_m = [], []
    for first in range(0, len(pool.hashes), 64):  # bounded memory on a long pool video
        distance = np.bitwise_count(pool.hashes[first : first + 64, None] ^ index.hashes[None, :])
        j, m = np.nonzero(distance <= MAX_HAMMING)
        pairs_j.append(j + first)
        pairs_m.append(m)
    j, m = np.concatenate(pairs_j), np.concatenate(pairs_m)
    if not len(j):
        return None
    colour = np.abs(pool.colours[j].astype(np.int16) - index.colours[m]).mean(axis=1)
    j, m = j[colour <= MAX_COLOUR], m[colour <= MAX_COLOUR]
    best: LeakMatch | None = None
    for test in np.unique(index.owner[m]):
        mine = index.owner[m] == test
        frames, offset, chosen = _consistent(pool.times[j[mine]] - index.times[m[mine]], j[mine], index.tolerance[test])
        if frames < index.required[test] or (best is not None and frames <= best.frames):
            continue
        bits = np.bitwise_count(pool.hashes[j[mine][chosen]] ^ index.hashes[m[mine][chosen]])
        best = LeakMatch(
            pool_id, pool_path, index.ids[test], index.paths[test], round(offset, 3), frames, float(bits.mean())
        )
    return best


def _consistent(offsets: np.ndarray, samples: np.ndarray, tolerance: float) -> tuple[int, float, np.ndarray]:
    """(most distinct pool samples whose offsets fit in one window of `tolerance`, that window's
    median offset, the pairs in it)."""
    order = np.argsort(offsets)
    offsets, samples = offsets[order], samples[order]
    ends = np.searchsorted(offsets, offsets + tolerance, side="right")
    best, where = 0, slice(0, 0)
    for start, end in enumerate(ends):
        if end - start > best:  # fewer pairs than the best count of distinct samples: cannot beat it
            count = len(np.unique(samples[start:end]))
            if count > best:
                best, where = count, slice(start, end)
    return best, float(np.median(offsets[where])) if best else 0.0, order[where]


def find_leak_matches(
    pool_entries: Sequence[tuple[str, str | Path]],
    test_paths: Sequence[str | Path],
    cache_dir: str | Path | None = None,
    workers: int | None = None,
) -> dict[str, LeakMatch]:
    """{pool video id: its match} for every pool video (id, file) holding a test video's footage.

    An unreadable test video is a DataError (the check would be incomplete); an unreadable pool
    video cannot be checked and is reported in one log line (curation rejects it anyway).
    """
    cache = Path(cache_dir) if cache_dir is not None else None
    if not pool_entries or not test_paths:
        return {}
    # One worker pool for both: the test videos come first, so a broken one stops the check at once.
    jobs = [(path, TEST_STEP_S) for path in test_paths] + [(path, POOL_STEP_S) for _, path in pool_entries]
    results = fingerprints(jobs, cache, workers)
    tests = [next(results) for _ in test_paths]
    broken = [result for result in tests if isinstance(result, str)]
    if broken:
        results.close()
        raise DataError(f"leak check: test video unreadable: {broken[0]}")
    flat = [str(path) for path, result in zip(test_paths, tests) if not len(result.times)]
    if flat:
        log.warning("leak check: %d test video(s) have no frame with structure to compare: %s", len(flat), flat[:5])
    index = EvaluationIndex(test_paths, tests)  # type: ignore[arg-type]
    found: dict[str, LeakMatch] = {}
    unreadable = []
    for result, (video_id, path) in zip(results, pool_entries):  # results first: its progress bar closes
        if isinstance(result, str):
            unreadable.append(str(path))
            continue
        hit = match(result, index, video_id, str(path))
        if hit is not None:
            found[video_id] = hit
    if unreadable:
        log.warning("leak check: %d pool video(s) unreadable, not checked: %s", len(unreadable), unreadable[:5])
    log.info("leak check: %d of %d pool videos hold a test video's footage", len(found), len(pool_entries))
    return found


LEAK_COLUMNS = ["video_id", "path", "test_video", "test_path", "offset", "frames", "hamming"]


def leak_rows(matches: Sequence[LeakMatch]) -> list[dict[str, str]]:
    return [
        {
            "video_id": m.pool_id,
            "path": m.pool_path,
            "test_video": m.test_id,
            "test_path": m.test_path,
            "offset": f"{m.offset:.3f}",
            "frames": str(m.frames),
            "hamming": f"{m.hamming:.2f}",
        }
        for m in sorted(matches, key=lambda m: m.pool_id)
    ]


def write_leak_removed(path: Path, matches: Sequence[LeakMatch]) -> Path:
    """leak_removed.csv: one row per removed pool video and the test video it holds (an artifact)."""
    write_csv(path, LEAK_COLUMNS, leak_rows(matches))
    return path


def evaluation_videos(benchmarks: Sequence[str] | None, data: DataConfig, cache_dir: Path) -> list[Path]:
    """The test videos of every benchmark `data.leak_check_against` names (None: the job's own).

    An entry is the job's benchmark name (`data.name`: its `data.root`, or the generated embedded
    benchmark) or a benchmark folder in the AVSync15 release layout. Its evaluation splits are
    test.txt and, when present, openclass/test.txt. Checked before any compute: a DataError names
    the entry.
    """
    from asva.data import sources

    paths: list[Path] = []
    for entry in [data.name] if benchmarks is None else benchmarks:
        if entry == data.name:
            root = sources.benchmark_root(data, cache_dir)
            sources.ensure_generated(data, root)
        else:
            root = Path(entry).expanduser()
            if not root.is_dir():
                raise DataError(
                    f"data.leak_check_against: {entry!r} is neither this job's benchmark (data.name={data.name}) "
                    "nor a benchmark folder"
                )
        splits = [folder for folder in (root, root / "openclass") if (folder / "test.txt").is_file()]
        if not splits:
            raise DataError(f"data.leak_check_against: {root} has no test.txt")
        for folder in splits:
            for line in (folder / "test.txt").read_text().splitlines():
                if line.strip():
                    video = folder / "videos" / line.strip()
                    if not video.is_file():
                        raise DataError(f"data.leak_check_against: test video {video} does not exist")
                    paths.append(video)
    return paths
