"""Where a configured dataset lives, checked before any compute."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from asva.config.hashing import stable_hash
from asva.config.schema import DataConfig
from asva.data.synthetic import dataset_fingerprint, generate
from asva.errors import DataError


def benchmark_root(data: DataConfig, cache_dir: Path) -> Path:
    """The benchmark folder: data.root, or (synthetic) the generated folder for these settings."""
    if data.root is not None:
        root = Path(data.root).expanduser()
        if not root.is_dir():
            raise DataError(f"data.root: {root} does not exist or is not a folder")
        return root
    return cache_dir / f"synthetic-{stable_hash(dataset_fingerprint(data))}"


def pool_root(data: DataConfig, benchmark: Path) -> Path | None:
    """The pretraining pool folder, or None when the configuration names none."""
    if data.pool_root is not None:
        root = Path(data.pool_root).expanduser()
        if not root.is_dir():
            raise DataError(f"data.pool_root: {root} does not exist or is not a folder")
        return root
    candidate = benchmark / "pool"
    return candidate if data.name == "synthetic" else (candidate if candidate.is_dir() else None)


def ensure_generated(data: DataConfig, root: Path) -> None:
    if data.name == "synthetic" and data.root is None:
        generate(data, root)


def train_videos_per_class(data: DataConfig, root: Path) -> dict[str, int]:
    """Count the training split per class from the split file (or the generator's settings)."""
    if data.name == "synthetic" and data.root is None:
        return {label: data.synthetic.train_per_class for label in data.synthetic.benchmark_classes}
    split = root / "train.txt"
    if not split.is_file():
        raise DataError(f"data.root: {root} has no train.txt split file")
    lines = [line.strip() for line in split.read_text().splitlines() if line.strip()]
    return dict(Counter(line.split("/")[0] for line in lines))
