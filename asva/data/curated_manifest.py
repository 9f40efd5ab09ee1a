"""The curated pool's manifest: what `sweeps/curate.py` writes and a training job reads as its pool.

One CSV row per kept video, header exactly `video_id,label,path,start,end`: `path` is absolute,
`start` / `end` are the seconds of the video's longest kept segment within that file.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from asva.errors import DataError
from asva.files import atomic_open

COLUMNS = ["video_id", "label", "path", "start", "end"]


@dataclass(frozen=True)
class ManifestRow:
    video_id: str
    label: str
    path: Path
    start: float
    end: float


def write_curated_manifest(path: Path, rows: list[ManifestRow]) -> None:
    """Write the manifest atomically (a killed writer leaves the previous file, never half of one)."""
    with atomic_open(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([row.video_id, row.label, os.path.abspath(row.path), f"{row.start:.4f}", f"{row.end:.4f}"])


def read_curated_manifest(path: str | Path) -> tuple[list[ManifestRow], list[str]]:
    """(rows, sorted class labels) of a curated manifest.

    Every check runs here, before any compute: a missing manifest or video file, a wrong header,
    a duplicate id or an empty or reversed segment is a DataError naming the file and the row.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"curated manifest {path} does not exist")
    rows: list[ManifestRow] = []
    seen: set[str] = set()
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != COLUMNS:
            raise DataError(f"{path}: header must be {','.join(COLUMNS)}, got {','.join(header or [])!r}")
        for line, values in enumerate(reader, start=2):
            if not values:
                continue
            if len(values) != len(COLUMNS):
                raise DataError(f"{path}:{line}: expected {len(COLUMNS)} values, got {len(values)}")
            video_id, label, file, start, end = values
            try:
                span = float(start), float(end)
            except ValueError:
                raise DataError(f"{path}:{line}: start {start!r} and end {end!r} must be seconds") from None
            if not span[0] < span[1] or span[0] < 0:
                raise DataError(f"{path}:{line}: segment {start}-{end} s of {video_id} is empty or reversed")
            if video_id in seen:
                raise DataError(f"{path}:{line}: video id {video_id!r} is listed twice")
            if not Path(file).is_file():
                raise DataError(f"{path}:{line}: video file {file} of {video_id} does not exist")
            seen.add(video_id)
            rows.append(ManifestRow(video_id, label, Path(file), *span))
    if not rows:
        raise DataError(f"{path}: the curated manifest lists no video")
    return rows, sorted({row.label for row in rows})
