"""Shared fixtures: one torch thread per test, a private MLflow store and cache per session (each
pytest-xdist worker is a session of its own), the real sweep config composed in this process and tiny
jobs run from it, and the data several test modules read."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Overrides that shrink a job to seconds: a few clips, a few steps, two sampling steps, one torch
# thread (on tiny tensors threads only wait for each other: 2 of them on 2 busy cores made a job 5x slower).
TINY_OVERRIDES = [
    "data.synthetic.train_per_class=4",
    "data.synthetic.test_per_class=2",
    "data.synthetic.pool_per_class=4",
    "audio.encoders.a.train_steps=2",
    "audio.encoders.b.train_steps=2",
    "model.base_train_steps=2",
    "train.pretrain.steps=2",
    "train.finetune.steps=2",
    "diffusion.sampling_steps=2",
    "eval.num_sample_videos=1",
    "eval.networks.sync_classifier.steps=2",
    "eval.networks.embedder_steps=2",
    "eval.networks.video_net_steps=2",
    "train.num_threads=1",
]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test computes on one torch thread (a job it runs in this process may set another count,
    which ends with the test). Tiny tensors: one thread is many times faster than several fighting
    over 2 shared cores (a test training a tiny model took 26 s on 2 threads, 0.7 s on one)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("asva")


@pytest.fixture(scope="session")
def session_store(workdir: Path) -> str:
    """One SQLite store for the session: MLflow's schema migration costs seconds per new file."""
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["ASVA_ARTIFACT_ROOT"] = str(workdir / "mlartifacts")
    import mlflow

    mlflow.MlflowClient(tracking_uri=uri).search_experiments()  # creates the schema once
    return uri


def composed(*overrides: str, config_name: str = "window_radius"):
    """The config `sweeps/<config_name>.py <overrides>` (no -m) hands its job, composed by Hydra from
    the real sweeps/conf in this process (an unknown key fails here, as it does there)."""
    from hydra import compose, initialize_config_dir

    from asva.config.store import register

    register()
    with initialize_config_dir(config_dir=str(REPO / "sweeps" / "conf"), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


def compose_job(*overrides: str, config_name: str = "window_radius"):
    """`composed(...)` built into the typed, checked config the job runs (as asva.cli.run builds it)."""
    from asva.config.build import build_config

    return build_config(composed(*overrides, config_name=config_name))


@pytest.fixture
def tiny_job(tmp_path: Path, session_store: str):
    """Runs one job in this process as its sweep entry point would, at the TINY_OVERRIDES settings with
    this test's cache and runs folders, logged to the session store: `tiny_job(*overrides,
    config_name=...)` returns the job's config and its metrics. Far cheaper than a subprocess sweep
    (no interpreter, imports or store migration per job); tests/test_sweeps.py keeps the entry points."""
    from asva.experiment import run_job

    def run(*overrides: str, config_name: str = "window_radius"):
        cfg = compose_job(*TINY_OVERRIDES, *path_overrides(tmp_path), *overrides, config_name=config_name)
        return cfg, run_job(cfg)

    return run


@pytest.fixture(scope="session")
def training_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 8-s training videos (one with 48 kHz stereo sound) and a 2-s one, in the AVSync15 layout
    (tests/training_videos.py), written once for tests/test_windows.py and tests/test_streaming.py.
    Shared: a test that breaks a file copies the folder first."""
    from training_videos import write_training_videos

    return write_training_videos(tmp_path_factory.mktemp("training_videos"))


@pytest.fixture(scope="module")
def study_store(tmp_path_factory: pytest.TempPathFactory):
    """Four studies' runs in a throwaway store that MLFLOW_TRACKING_URI points at while the module runs
    (tests/analysis_fixtures.py; the tests of analysis/ only read it)."""
    from analysis_fixtures import logged_studies

    with logged_studies(tmp_path_factory) as store:
        yield store


@pytest.fixture(scope="module")
def study_job_runs(study_store):
    """The job runs of `study_store` as analysis/runs.py loads them."""
    from analysis import runs

    return runs.load_job_runs()


@functools.cache
def _migrated_empty_store() -> Path:
    """An empty SQLite store MLflow has created its tables in, once per test process."""
    import mlflow

    folder = tempfile.mkdtemp(prefix="asva-empty-store-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = Path(folder) / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def job_env(workdir: Path) -> dict[str, str]:
    """The environment of an entry point run as a subprocess: its own store under `workdir`, and torch
    on one thread by default (as in this process; a script that sets its own thread count still does).
    A new store starts as a copy of an empty one with MLflow's tables made: creating them costs every
    process that finds no store 1.5 s (the session store's first use tests that path)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "mlflow.db").exists():
        shutil.copyfile(_migrated_empty_store(), workdir / "mlflow.db")
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    env["ASVA_ARTIFACT_ROOT"] = str(workdir / "mlartifacts")
    env["OMP_NUM_THREADS"] = "1"
    return env


def path_overrides(workdir: Path) -> list[str]:
    return [f"paths.cache_dir={workdir / 'cache'}", f"paths.runs_dir={workdir / 'runs'}"]


def require_executables(*names: str) -> None:
    """Skip when a system program a test drives is not installed, except in CI (.ci/run sets
    ASVA_REQUIRE_SERVICES=1 after installing them), where its absence is a failure, not a skip."""
    missing = [name for name in names if shutil.which(name) is None]
    if not missing:
        return
    message = f"not installed: {', '.join(missing)} (see .ci/system-packages.txt)"
    if os.environ.get("ASVA_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)
