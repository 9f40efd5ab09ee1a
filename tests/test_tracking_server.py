"""`tracking=server`: a two-job sweep recorded by an MLflow tracking server backed by PostgreSQL.

The fixtures start PostgreSQL (Debian's `postgresql`) and `mlflow server` on loopback; everything is
checked through the server's REST API, as a teammate on another machine would see it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from conftest import REPO, TINY_OVERRIDES, path_overrides, require_executables
from services.mlflow_server import running_mlflow_server
from services.postgres import bin_dir, running_postgres

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    binaries = bin_dir()
    if binaries is None:
        require_executables("initdb", "postgres")
    home = tmp_path_factory.mktemp("tracking_server")
    with running_postgres(binaries) as postgres:
        postgres.create_database("mlflow")
        # SQLAlchemy 2.1 picks psycopg 3 for a bare postgresql://; the project ships psycopg2.
        backend = postgres.url("mlflow", driver="postgresql+psycopg2")
        with running_mlflow_server(backend, home / "artifacts", home / "mlflow_server.log") as server:
            print(
                f"\nPostgreSQL up in {postgres.start_seconds:.1f} s, mlflow server up in {server.start_seconds:.1f} s"
            )
            yield server


def test_two_job_sweep_is_recorded_by_the_server(tracking_server, tmp_path):
    local_store = tmp_path / "must_stay_unused.db"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{local_store}",
        "ASVA_ARTIFACT_ROOT": str(tmp_path / "local_artifacts"),
    }
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "sweeps" / "window_radius.py"),
            "-m",
            "window_radius=0.5,2.0",
            "seed=0",
            "tracking=server",
            f"tracking.uri={tracking_server.url}",
            *TINY_OVERRIDES,
            *path_overrides(tmp_path),
            f"hydra.sweep.dir={tmp_path / 'multirun'}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not local_store.exists()

    client = mlflow.MlflowClient(tracking_uri=tracking_server.url)
    experiment = client.get_experiment_by_name("window_radius")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("asva.role") == "sweep"]
    jobs = [r for r in runs if r.data.tags.get("asva.role") == "job"]
    assert len(parents) == 1 and len(jobs) == 2
    assert sorted(j.data.params["window_radius"] for j in jobs) == ["0.5", "2.0"]
    for job in jobs:
        assert job.info.status == "FINISHED"
        assert job.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert job.data.params["cfg.tracking.backend"] == "server"
        assert "event_sync" in job.data.metrics
        assert len(client.get_metric_history(job.info.run_id, "train_loss")) == 2
        assert len(job.data.tags["asva.git_commit"]) == 40 and job.data.tags["asva.gpu"] == "cpu"
        # Artifacts go through the server (mlflow-artifacts:/), which stores them in its own folder.
        assert job.info.artifact_uri.startswith("mlflow-artifacts:/")
        listed = {a.path for a in client.list_artifacts(job.info.run_id)}
        assert {"config.yaml", "environment.json", "samples"} <= listed
        samples = client.list_artifacts(job.info.run_id, "samples")
        assert len(samples) == 1 and samples[0].path.endswith(".mp4") and samples[0].file_size > 0
        config = Path(
            client.download_artifacts(job.info.run_id, "config.yaml", str(tmp_path / job.info.run_id))
        ).read_text()
        assert f"window_radius: {job.data.params['window_radius']}" in config
    stored = list(tracking_server.artifacts.rglob("*.mp4"))
    assert len(stored) == 2
