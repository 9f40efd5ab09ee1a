"""Where runs are stored, and the names every other tool relies on (the tracking contract).

The default store is a SQLite file in the project folder, so `mlflow ui` and
`analysis/make_tables.py` find the runs without any setting; MLFLOW_TRACKING_URI overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DB = PROJECT_ROOT / "mlflow.db"
DEFAULT_ARTIFACT_ROOT = PROJECT_ROOT / "mlartifacts"

# Tags
STUDY_TAG = "asva.study"
ROLE_TAG = "asva.role"
SWEEP_TAG = "asva.sweep_dir"
PARENT_TAG = "mlflow.parentRunId"

ROLE_SWEEP = "sweep"  # the parent run of a multirun
ROLE_JOB = "job"  # one training + evaluation job: the rows of every table
ROLE_PRETRAIN = "pretrain"  # a stage-1 pretraining, shared by the jobs that need it

# Params every job logs under these exact names (analysis groups by them).
CONTRACT_PARAMS = (
    "dataset",
    "fps",
    "window_radius",
    "audio_layers",
    "k",
    "pretrain",
    "curation",
    "finetune",
    "seed",
    "config_hash",
)

# Metrics that describe a run's bookkeeping, not its results: never a table column.
BOOKKEEPING_METRICS = frozenset(
    {"train_loss", "final_train_loss", "num_test_clips", "data_skipped_files", "curation_kept", "curation_rejected"}
)

# Metric names reserved for numbers computed exactly as the papers define them.
PAPER_METRICS = ("fvd", "ia", "it", "relsync", "alignsync")


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else the project's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{DEFAULT_DB}"


def artifact_root() -> Path:
    """Folder for run artifacts when the store is local (ASVA_ARTIFACT_ROOT overrides)."""
    return Path(os.environ.get("ASVA_ARTIFACT_ROOT") or DEFAULT_ARTIFACT_ROOT)
