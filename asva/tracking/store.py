"""Where runs are stored, and the names every other tool relies on (the tracking contract).

The default store is a SQLite file in the project folder, so `mlflow ui` and
`analysis/make_tables.py` find the runs without any setting; MLFLOW_TRACKING_URI overrides it.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DB = PROJECT_ROOT / "mlflow.db"
DEFAULT_ARTIFACT_ROOT = PROJECT_ROOT / "mlartifacts"

# Tags
STUDY_TAG = "asva.study"
ROLE_TAG = "asva.role"
SWEEP_TAG = "asva.sweep_dir"
PARENT_TAG = "mlflow.parentRunId"

# Experiment tag: MLflow 3's UI opens an experiment without it in its GenAI view (traces, prompts),
# where none of our runs shows; with it, in the runs table. Set on every experiment runs go to.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

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
    {
        "train_loss",
        "final_train_loss",
        "num_test_clips",
        "num_test_clips_openclass",
        "data_skipped_files",
        "pool_leaks_removed",
        "curation_kept",
        "curation_rejected",
    }
)

# Metric names reserved for numbers computed exactly as the papers define them.
PAPER_METRICS = ("fvd", "ia", "it", "relsync", "alignsync")

# Suffixes of metric names: asva/evaluation/ writes them, analysis/ reads them.
EMBEDDED_SUFFIX = "_embedded"  # a paper metric computed with a stand-in network, not the paper's
NULL_AUDIO_SUFFIX = "_null_audio"  # the same model sampled with the null audio: does it use the audio?
OPENCLASS_SUFFIX = "_openclass"  # scored on held-out clips of classes only the pretraining pool holds
GROUNDTRUTH_SUFFIX = "_ref_groundtruth"  # reference row: the real clips scored as if generated
STATIC_SUFFIX = "_ref_static"  # reference row: each real clip's first frame repeated
# RelSync/AlignSync on real data by a synchronization classifier of this project, not the papers' (docs/metrics.md).
PROJECT_CLASSIFIER_SUFFIX = "_asva"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else the project's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{DEFAULT_DB}"


def artifact_root() -> Path:
    """Folder for run artifacts when the store is local (ASVA_ARTIFACT_ROOT overrides)."""
    return Path(os.environ.get("ASVA_ARTIFACT_ROOT") or DEFAULT_ARTIFACT_ROOT)


# --- Preparing the store for many writers -------------------------------------------------------
#
# MLflow creates its SQLite schema the first time a process opens a store whose tables are missing.
# Many jobs opening a fresh file at once all see it empty and all run the migrations: they fail with
# "duplicate column" or "table already exists". So the schema is created once, under a file lock,
# before anything writes. Writers that then meet "database is locked" (a write lock held longer than
# MLflow's 20 s busy timeout, or SQLite refusing a read-to-write lock upgrade at once) retry with
# exponential backoff. The rollback journal is kept (no WAL): WAL measured no faster here and needs
# shared memory, which the network file systems of clusters do not give.

SCHEMA_LOCK_TIMEOUT_S = 600
BUSY_RETRIES = 12
BUSY_FIRST_DELAY_S = 0.05
BUSY_MAX_DELAY_S = 5.0

_prepared: set[str] = set()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///...` URI, else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def prepare_store(uri: str | None = None) -> str:
    """Create the schema of a SQLite store once, under a file lock; returns the URI.

    Cheap after the first call in a process. Other stores (an MLflow server) manage their own schema.
    """
    uri = uri or tracking_uri()
    if uri in _prepared:
        return uri
    path = sqlite_path(uri)
    if path is not None:
        from mlflow.tracking import MlflowClient

        from asva.files import lock

        path.parent.mkdir(parents=True, exist_ok=True)
        with lock(path, timeout=SCHEMA_LOCK_TIMEOUT_S):
            # Opening the store creates the tables when they are missing; under the lock only one
            # process ever does, and the others find them complete.
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    _prepared.add(uri)
    return uri


def is_busy_error(error: BaseException) -> bool:
    """True for the transient errors of a store under concurrent writers."""
    code = getattr(error, "error_code", "")
    return code == "TEMPORARILY_UNAVAILABLE" or "database is locked" in str(error)


def retry_when_busy(call, *args, **kwargs):
    """`call(*args, **kwargs)`, retried with jittered exponential backoff while the store is busy.

    Safe for writes: a store that reports itself busy rolled the whole transaction back.
    """
    delay = BUSY_FIRST_DELAY_S
    for _ in range(BUSY_RETRIES - 1):
        try:
            return call(*args, **kwargs)
        except Exception as error:
            if not is_busy_error(error):
                raise
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, BUSY_MAX_DELAY_S)
    return call(*args, **kwargs)
