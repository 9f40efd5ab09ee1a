"""Files written whole or not at all, and results built once by whichever job gets there first.

A file is written beside its final name (`<name>.<pid>.partial`) and renamed over it when complete: a
killed writer leaves the previous file or none, never half of one, and concurrent writers of the same
file each write their own partial file (the last rename wins, each whole). A result every job needs
(a trained stand-in network, a generated benchmark) is built under a file lock: one job builds it, the
others wait and read it.
"""

from __future__ import annotations

import csv
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Sequence

from filelock import FileLock

from asva.errors import DataError


def lock(path: str | Path, timeout: float = -1) -> FileLock:
    """The lock of `path` (the file `<path>.lock`): held while one process builds what `path` names.
    `timeout`: seconds to wait before filelock.Timeout (-1: for ever)."""
    return FileLock(f"{path}.lock", timeout=timeout)


def partial_path(path: str | Path) -> Path:
    """Where a file is written before it is renamed over `path` (this process's own name beside it)."""
    path = Path(path)
    return path.with_name(f"{path.name}.{os.getpid()}.partial")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write: renamed over `path` when the block ends, removed if it fails.
    Its name does not end in `path`'s extension: a writer that picks the format by it must be told the format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """An open file that becomes `path` when the block ends, flushed to disk before the rename (a crash right
    after it still finds the whole file)."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


def write_csv(path: str | Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    """A CSV of `rows` (dicts keyed by `columns`) under a header row."""
    with atomic_open(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def save_torch(path: str | Path, payload: Any) -> None:
    """`torch.save` of `payload` (checkpoints, cached tensors, trained stand-ins)."""
    import torch  # here, not above: the tracking store's processes use this module without torch

    with atomic_open(path, "wb") as handle:
        torch.save(payload, handle)


def load_torch(path: str | Path) -> Any:
    """A payload of `save_torch`, on the CPU (our own files: they hold more than tensors)."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


def build_once(path: Path, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Load `path`, or build and save it; concurrent jobs wait for the one that builds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with lock(path):
        if path.exists():
            return load_torch(path)
        payload = build()
        save_torch(path, payload)
        return payload


def claim_settings(path: Path, settings: dict[str, Any], made: str) -> None:
    """Write `settings` as JSON to `path` on its folder's first run; refuse a later run with other
    settings (DataError), which would mix the results of two configurations in one folder. `made`
    says in the error what the folder holds: "output: <folder> was curated". Under a lock, so of
    concurrent first runs one records and the others compare with what it recorded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with lock(path):
        if not path.is_file():
            write_text(path, json.dumps(settings, indent=1, sort_keys=True))
            return
        recorded = json.loads(path.read_text())
    differing = sorted(key for key in settings if recorded.get(key) != settings[key])
    if differing:
        raise DataError(
            f"{made} with other settings ({', '.join(differing)} differ from those in {path}): "
            "run with those to resume it, or choose another folder"
        )
