"""Every run records its source revision, software, hardware and SLURM job (asva/tracking/metadata.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import mlflow
import torch

from asva.tracking import metadata
from asva.tracking.runs import RunLogger
from asva.tracking.store import PROJECT_ROOT


def _environment_json(client: mlflow.MlflowClient, run_id: str) -> dict:
    path = client.download_artifacts(run_id, metadata.ENVIRONMENT_ARTIFACT)
    return json.loads(Path(path).read_text())


def test_run_records_git_environment_and_slurm_job(session_store, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURMD_NODENAME", "gpu-node-7")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    run = RunLogger.create("metadata", "job", "with slurm")
    client = mlflow.MlflowClient(tracking_uri=session_store)
    tags = client.get_run(run.run_id).data.tags

    head = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = (
        subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain"], capture_output=True, text=True
        ).stdout.strip()
        != ""
    )
    assert tags[metadata.GIT_COMMIT_TAG] == head and len(head) == 40
    assert tags[metadata.MLFLOW_GIT_COMMIT_TAG] == head
    assert tags[metadata.GIT_DIRTY_TAG] == str(dirty).lower()
    assert tags[metadata.GPU_TAG] == ("cpu" if not torch.cuda.is_available() else metadata.gpu_description())
    assert tags[metadata.SLURM_JOB_TAG] == "4242"
    assert tags[metadata.SLURM_NODE_TAG] == "gpu-node-7"
    assert torch.__version__.startswith(tags["asva.pkg.torch"])
    assert tags["asva.pkg.mlflow"] == mlflow.__version__
    assert tags["asva.pkg.hydra-core"].startswith("1.3")

    env = _environment_json(client, run.run_id)
    assert env["git_commit"] == head
    assert env["packages"]["mlflow"] == mlflow.__version__
    assert env["slurm"]["SLURM_JOB_ID"] == "4242"
    assert env["gpu"] == tags[metadata.GPU_TAG]

    # A requeued or resumed attempt runs as another SLURM job: reopening records it.
    run.finish("KILLED")
    monkeypatch.setenv("SLURM_JOB_ID", "4343")
    run.reopen()
    reopened = client.get_run(run.run_id)
    assert reopened.info.status == "RUNNING"
    assert reopened.data.tags[metadata.SLURM_JOB_TAG] == "4343"
    assert _environment_json(client, run.run_id)["slurm"]["SLURM_JOB_ID"] == "4343"
    run.finish()


def test_no_slurm_tags_outside_slurm_and_trial_tags_inside_a_search(session_store, monkeypatch):
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURMD_NODENAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(metadata.OPTUNA_TRIAL_ENV, "3")
    monkeypatch.setenv(metadata.OPTUNA_STUDY_ENV, "search-abc")
    run = RunLogger.create("metadata", "job", "no slurm")
    tags = mlflow.MlflowClient(tracking_uri=session_store).get_run(run.run_id).data.tags
    assert not [key for key in tags if key.startswith("asva.slurm")]
    assert tags[metadata.OPTUNA_TRIAL_TAG] == "3"
    assert tags[metadata.OPTUNA_STUDY_TAG] == "search-abc"
    run.finish()


def test_git_state_outside_a_checkout_is_unknown(tmp_path):
    assert metadata.git_state.__wrapped__(tmp_path) == ("unknown", "unknown")
