"""Shared fixtures: a private MLflow store and cache per test session, and a tiny job config."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Overrides that shrink a job to seconds: a few clips, a few steps, two sampling steps.
TINY_OVERRIDES = [
    "data.synthetic.train_per_class=4",
    "data.synthetic.test_per_class=2",
    "data.synthetic.pool_per_class=4",
    "audio.encoder_a.train_steps=2",
    "audio.encoder_b.train_steps=2",
    "model.base_train_steps=2",
    "train.pretrain.steps=2",
    "train.finetune.steps=2",
    "diffusion.sampling_steps=2",
    "eval.num_sample_videos=1",
    "eval.networks.sync_classifier.steps=2",
    "eval.networks.embedder_steps=2",
    "eval.networks.video_net_steps=2",
]


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: one thread is many times faster than several fighting over 2 shared cores."""
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


def job_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    env["ASVA_ARTIFACT_ROOT"] = str(workdir / "mlartifacts")
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
