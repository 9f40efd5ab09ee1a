"""The leak check by content: a pool video holding a test video's footage (re-encoded, rescaled,
cut at another time, under another id) is found; unrelated videos, flat footage included, are not."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from asva.config.schema import DataConfig, SyntheticConfig
from asva.data import leakcheck
from asva.data.media import read_frames, write_video
from asva.data.synthetic import generate
from asva.errors import DataError

FPS = 6


def encode(path: Path, frames: np.ndarray, fps: int, crf: int) -> Path:
    """H.264 at another quality than write_video's near-lossless CRF 8."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def resize(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_CUBIC) for f in frames])


def widen(frames: np.ndarray) -> np.ndarray:
    """Square frames padded to 16:9 with other picture: their centre square is the original."""
    side = frames.shape[2]
    pad = (side * 16 // 9 - side) // 2
    return np.stack([cv2.copyMakeBorder(f, 0, 0, pad, pad, cv2.BORDER_REFLECT) for f in frames])


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    data = DataConfig(synthetic=SyntheticConfig(train_per_class=1, test_per_class=2, pool_per_class=3))
    return generate(data, tmp_path_factory.mktemp("leak") / "bench")


def videos(root: Path, split: str) -> list[Path]:
    return [root / "videos" / line for line in (root / split).read_text().split()]


def test_copies_of_a_test_video_are_found_and_unrelated_videos_kept(bench, tmp_path):
    tests = videos(bench, "test.txt") + videos(bench / "openclass", "test.txt")
    pool = videos(bench / "pool", "train.txt")
    source = next(p for p in tests if p.stem == "hammer_test_001")  # moves: raised, then struck
    _, original = read_frames(source, 1000)
    _, other = read_frames(pool[0], 1000)
    # Another clip's footage first, then the test video's: it starts 7/6 s into the copy.
    spliced = np.concatenate([other[:7], original, other[7:]])
    copies = {
        # larger, at CRF 32 instead of 8
        "copy_big_crf32": encode(tmp_path / "a.mp4", resize(spliced, 80, 80), FPS, 32),
        # 16:9 at 12 FPS (every frame twice), CRF 24: the centre square holds the test footage
        "copy_wide_12fps": encode(tmp_path / "b.mp4", widen(resize(np.repeat(spliced, 2, 0), 72, 72)), 2 * FPS, 24),
    }
    black = tmp_path / "black.mp4"  # flat footage matches anything and is never fingerprinted
    write_video(black, np.zeros((24, 32, 32, 3), np.uint8), FPS)
    entries = [(p.stem, p) for p in pool] + [(name, path) for name, path in copies.items()] + [("black", black)]

    matches = leakcheck.find_leak_matches(entries, tests, tmp_path / "cache", workers=2)

    assert sorted(matches) == sorted(copies)
    for hit in matches.values():
        assert hit.test_id == "hammer_test_001" and hit.test_path == str(source)
        assert hit.offset == pytest.approx(7 / FPS, abs=1 / FPS)
        assert hit.frames >= leakcheck.MIN_MATCHES
    serial = leakcheck.find_leak_matches(entries, tests, tmp_path / "cache", workers=1)
    assert {name: hit.test_id for name, hit in serial.items()} == {name: "hammer_test_001" for name in copies}
    rows = leakcheck.leak_rows(list(matches.values()))
    assert [r["video_id"] for r in rows] == sorted(copies) and rows[0]["test_path"] == str(source)


def test_colour_tells_apart_what_the_grey_hash_cannot(tmp_path):
    """The same shapes in other colours (as two embedded classes): equal pHash, no match."""
    yy, xx = np.mgrid[0:32, 0:32]
    frames = []
    for t in range(18):
        frame = np.full((32, 32, 3), 40, np.uint8)
        frame[(xx - 16) ** 2 + (yy - 8 - t) ** 2 <= 36] = (230, 200, 40)
        frames.append(frame)
    yellow = np.stack(frames)
    purple = yellow.copy()
    purple[(yellow == (230, 200, 40)).all(-1)] = (110, 80, 210)
    test = tmp_path / "test.mp4"
    write_video(test, yellow, FPS)
    write_video(tmp_path / "purple.mp4", purple, FPS)
    grey = [leakcheck.frame_signature(f) for f in (yellow[5], purple[5])]
    assert np.bitwise_count(grey[0][0] ^ grey[1][0]) <= leakcheck.MAX_HAMMING  # the hash alone would match
    pool = [("purple", tmp_path / "purple.mp4"), ("same", test)]
    matches = leakcheck.find_leak_matches(pool, [test], workers=1)
    assert list(matches) == ["same"] and matches["same"].test_id == "test"


def test_fingerprints_are_cached_by_path_size_and_mtime(bench, tmp_path, monkeypatch):
    path = tmp_path / "v.mp4"
    path.write_bytes(videos(bench, "test.txt")[0].read_bytes())
    first = leakcheck.cached_fingerprint(path, leakcheck.POOL_STEP_S, tmp_path / "cache")
    assert len(first.times) == 4 and first.duration == pytest.approx(2.0)  # 0, 0.5, 1 and 1.5 s

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr("asva.data.media.read_frames", no_decoding)
    again = leakcheck.cached_fingerprint(path, leakcheck.POOL_STEP_S, tmp_path / "cache")
    assert np.array_equal(again.hashes, first.hashes) and np.array_equal(again.colours, first.colours)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the file changed: fingerprint anew
    with pytest.raises(AssertionError, match="decoded again"):
        leakcheck.cached_fingerprint(path, leakcheck.POOL_STEP_S, tmp_path / "cache")


def test_a_check_whose_fingerprints_are_all_cached_starts_no_process_pool(bench, tmp_path, monkeypatch):
    """Every job runs the check: with the fingerprints cached it reads them in-process (a spawned pool
    costs each job seconds of imports)."""
    entries = [(p.stem, p) for p in videos(bench, "test.txt")[:1]]  # a pool video holding a test video
    tests = videos(bench, "test.txt")
    first = leakcheck.find_leak_matches(entries, tests, tmp_path / "cache", workers=2)

    def no_pool(*args, **kwargs):
        raise AssertionError("process pool started")

    monkeypatch.setattr(leakcheck, "ProcessPoolExecutor", no_pool)
    again = leakcheck.find_leak_matches(entries, tests, tmp_path / "cache", workers=2)
    assert sorted(again) == sorted(first) == [entries[0][0]]
    with pytest.raises(AssertionError, match="process pool started"):  # an uncached video is decoded by the pool
        leakcheck.find_leak_matches(entries, tests, tmp_path / "other_cache", workers=2)


def test_an_unreadable_test_video_stops_the_check_an_unreadable_pool_video_does_not(bench, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    test = videos(bench, "test.txt")[0]
    assert leakcheck.find_leak_matches([("broken", broken)], [test], workers=1) == {}
    with pytest.raises(DataError, match="leak check: test video unreadable: .*broken.mp4"):
        leakcheck.find_leak_matches([("fine", test)], [broken], workers=1)


def test_leak_check_against_names_benchmarks_and_fails_on_an_unknown_one(bench, tmp_path):
    data = DataConfig(root=str(bench))
    own = leakcheck.evaluation_videos(None, data, tmp_path)
    assert own == videos(bench, "test.txt") + videos(bench / "openclass", "test.txt")
    assert leakcheck.evaluation_videos(["synthetic", str(bench / "openclass")], data, tmp_path) == own + own[-8:]
    with pytest.raises(DataError, match="data.leak_check_against: 'avsync48' is neither this job's benchmark"):
        leakcheck.evaluation_videos(["avsync48"], data, tmp_path)
