"""Many jobs writing to one fresh SQLite store at once: no run and no metric may be lost.

Each writer is its own Python process (as jobs of a sweep are), started together on a store file
that does not exist yet, so the first thing they all do at the same moment is open it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from asva.tracking import store

WRITERS = 8
STEPS = 60  # metric points per writer, each its own write transaction
CURVE_POINTS = 100  # plus a buffered curve, written in batches


def _writer(uri: str, index: int, start_file: Path) -> None:
    """One job: waits for the start signal, then creates its run and logs its metrics."""
    os.environ["MLFLOW_TRACKING_URI"] = uri
    import torch  # noqa: F401  (imported by every real job; the run's metadata asks it for the GPU)

    from asva.tracking.runs import RunLogger

    while not start_file.exists():
        time.sleep(0.01)
    run = RunLogger.create("concurrency", "job", f"writer {index}", tags={"writer": str(index)})
    for step in range(STEPS):
        run.log_metrics({"value": index * 1000 + step}, step=step)
    for step in range(CURVE_POINTS):
        run.log_curve_point("train_loss", float(step), step)
    run.finish()


def test_parallel_writers_on_a_fresh_store_lose_nothing(tmp_path):
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    start_file = tmp_path / "start"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "ASVA_ARTIFACT_ROOT": str(tmp_path / "mlartifacts")}
    writers = [
        subprocess.Popen(
            [sys.executable, __file__, uri, str(i), str(start_file)], env=env, stderr=subprocess.PIPE, text=True
        )
        for i in range(WRITERS)
    ]
    time.sleep(3)  # let every writer import its modules, so they all open the store together
    started = time.perf_counter()
    start_file.touch()
    errors = [writer.communicate(timeout=600)[1] for writer in writers]
    elapsed = time.perf_counter() - started
    assert [w.returncode for w in writers] == [0] * WRITERS, "\n".join(e[-2000:] for e in errors)

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("concurrency")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(int(r.data.tags["writer"]) for r in runs) == list(range(WRITERS))
    for run in runs:
        index = int(run.data.tags["writer"])
        assert run.info.status == "FINISHED"
        values = client.get_metric_history(run.info.run_id, "value")
        assert sorted((m.step, m.value) for m in values) == [(s, index * 1000 + s) for s in range(STEPS)]
        curve = client.get_metric_history(run.info.run_id, "train_loss")
        assert sorted(m.step for m in curve) == list(range(CURVE_POINTS))
    retries = sum(e.count("database is locked") for e in errors)
    print(
        f"{WRITERS} writers x {STEPS + CURVE_POINTS} points on a fresh store: {elapsed:.1f} s, {retries} busy errors retried"
    )


def test_busy_store_is_retried_and_other_errors_are_not(monkeypatch):
    monkeypatch.setattr(store, "BUSY_FIRST_DELAY_S", 0.001)
    attempts = []

    def locked_twice():
        attempts.append(1)
        if len(attempts) <= 2:
            raise MlflowException("(sqlite3.OperationalError) database is locked", error_code="TEMPORARILY_UNAVAILABLE")
        return "written"

    assert store.retry_when_busy(locked_twice) == "written"
    assert len(attempts) == 3

    def invalid():
        attempts.append(1)
        raise MlflowException("Invalid value", error_code="INVALID_PARAMETER_VALUE")

    attempts.clear()
    with pytest.raises(MlflowException, match="Invalid value"):
        store.retry_when_busy(invalid)
    assert len(attempts) == 1

    def always_locked():
        attempts.append(1)
        raise MlflowException("database is locked", error_code="TEMPORARILY_UNAVAILABLE")

    attempts.clear()
    with pytest.raises(MlflowException, match="locked"):
        store.retry_when_busy(always_locked)
    assert len(attempts) == store.BUSY_RETRIES


def test_schema_is_created_under_a_lock_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    assert store.prepare_store(uri) == uri
    assert (tmp_path / "new" / "mlflow.db").stat().st_size > 0
    assert mlflow.MlflowClient(tracking_uri=uri).search_experiments()[0].name == "Default"


if __name__ == "__main__":
    _writer(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
