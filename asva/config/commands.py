"""The schemas of the entry points that are not a training job: `sweeps/curate.py`, `sweeps/prepare.py`,
`sweeps/evaluate.py` and `sweeps/train_sync_classifier.py`. They reuse the job's groups
(asva/config/schema.py) and check their own fields in `__post_init__`, as those do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from asva.config.checks import at_least, keys_under, one_of, require
from asva.config.schema import (
    CurationConfig,
    DataConfig,
    ExperimentConfig,
    PathsConfig,
    SyncClassifierConfig,
)


def check_shard(shard: int, shards: int) -> None:
    """A sharded job's `shard` of `shards` (sweeps/curate.py, sweeps/prepare.py)."""
    require(shards >= 1, "shards", f"must be >= 1, got {shards}")
    require(0 <= shard < shards, "shard", f"must be within 0..{shards - 1} (shards={shards}), got {shard}")


@dataclass
class CurateConfig:
    """`sweeps/curate.py`: curate a folder of videos into a manifest of kept segments."""

    study: str = "curation"
    # Folder of videos (AVSync15 layout, any tree of video files, or VGGSound's clips when vggsound_csv
    # is set); None: the embedded pool.
    input: Optional[str] = None
    # VGGSound's CSV (youtube id, start second, label, split): its train rows are curated, their clips
    # found under input; a relative path is under input.
    vggsound_csv: Optional[str] = None
    output: str = "curated"
    # The videos are split into `shards` shards by a hash of their id; a run curates shard `shard`,
    # and the run that finishes the last shard merges them (`merge=true`: only merge).
    shards: int = 1
    shard: int = 0
    merge: bool = False
    filters: CurationConfig = field(default_factory=CurationConfig)
    data: DataConfig = field(default_factory=DataConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)

    def __post_init__(self) -> None:
        check_shard(self.shard, self.shards)
        require(
            self.vggsound_csv is None or self.input is not None,
            "vggsound_csv",
            "needs input, the folder of VGGSound's clips",
        )


PREPARE_SETS = ("train", "pool")
LATENT_DTYPES = ("float16", "float32")


@dataclass
class PrepareConfig(ExperimentConfig):
    """`sweeps/prepare.py`: the frozen first stage's latents of every training video, cached once for
    every job with this data and model (asva/prepare_job.py, docs/datasets.md)."""

    # The sets to encode: the training split and the pretraining pool (when the data names one).
    sets: list[str] = field(default_factory=lambda: ["train", "pool"])
    # Each set's videos are split into `shards` consecutive shards; a run encodes shard `shard`.
    shards: int = 1
    shard: int = 0
    # float16 (half the disk; exact for latents computed in bf16) or float32 (bit-identical to fp32 encoding).
    latent_dtype: str = "float16"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_shard(self.shard, self.shards)
        one_of(self, "latent_dtype", LATENT_DTYPES)
        require(
            bool(self.sets) and all(name in PREPARE_SETS for name in self.sets),
            "sets",
            f"must name some of {', '.join(PREPARE_SETS)}, got {list(self.sets)}",
        )


@dataclass
class EvaluateConfig(ExperimentConfig):
    """`sweeps/evaluate.py`: the papers' evaluation protocol on a trained job (asva/evaluation/standalone.py)."""

    run_id: Optional[str] = None  # a finished job run: its config and adapter checkpoint
    checkpoint: Optional[str] = None  # or an adapter checkpoint file, with the job's settings as overrides
    clips_per_video: int = 3
    regenerate: bool = False  # sample again even when the generated clips are cached

    def __post_init__(self) -> None:
        super().__post_init__()
        require((self.run_id is None) != (self.checkpoint is None), "run_id / checkpoint", "give exactly one of them")
        at_least(self, "clips_per_video", 1)


@dataclass
class TrainSyncClassifierConfig:
    """`sweeps/train_sync_classifier.py`: train the synchronization classifier and save it."""

    study: str = "sync_classifier"
    seed: int = 0
    output: str = "sync_classifier.pt"  # the checkpoint eval.networks.sync_classifier.checkpoint loads
    classifier: SyncClassifierConfig = field(default_factory=SyncClassifierConfig)
    data: DataConfig = field(default_factory=DataConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)

    def __post_init__(self) -> None:
        require(
            not self.classifier.checkpoint,
            "classifier.checkpoint",
            "this script trains a classifier; name where to save it with output=",
        )
        with keys_under("classifier"):
            self.classifier.check_fits(self.data.clip_seconds)
