"""notebooks/window_radius.ipynb runs headlessly against a store of logged window-radius runs."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from nbclient import NotebookClient

from asva.tracking.store import ROLE_JOB, ROLE_TAG, STUDY_TAG

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO_ROOT / "notebooks" / "window_radius.ipynb"
# window radius -> EventSync per seed; radius 12.0 sorts after 3.0 only if sorted as a number
RADII = {"0.5": [61.0, 63.0], "3.0": [52.0, 56.0], "12.0": [30.0]}


@contextmanager
def store_folder(tmp_path: Path) -> Iterator[Path]:
    """In memory when the system has /dev/shm: SQLite fsyncs make an on-disk store 3x slower."""
    if Path("/dev/shm").is_dir():
        with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="asva-mlflow-") as folder:
            yield Path(folder)
    else:
        yield tmp_path


def log_window_radius_runs(uri: str, artifacts: Path) -> None:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("window_radius", artifact_location=artifacts.as_uri())
    jobs = [(radius, seed, sync, "FINISHED") for radius, values in RADII.items() for seed, sync in enumerate(values)]
    for radius, seed, sync, status in [*jobs, ("0.5", 2, 0.0, "FAILED")]:
        run = client.create_run(experiment, tags={STUDY_TAG: "window_radius", ROLE_TAG: ROLE_JOB})
        params = {"dataset": "synthetic", "fps": "6", "window_radius": radius, "audio_layers": "a:11", "seed": str(seed)}
        metrics = {"event_sync": sync, "event_sync_null_audio": 8.0, "event_sync_ref_groundtruth": 95.0}
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(name, value, 0, 0) for name, value in metrics.items()],
            params=[Param(name, value) for name, value in params.items()],
        )
        client.set_terminated(run.info.run_id, status=status)


def outputs_text(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_window_radius_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    committed = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in committed.cells), "commit the notebook with cleared outputs"

    with store_folder(tmp_path) as root:
        uri = f"sqlite:///{root}/mlflow.db"
        log_window_radius_runs(uri, root / "artifacts")
        # The kernel inherits this process's environment.
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
        NotebookClient(committed, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(REPO_ROOT)}}).execute()

    outputs = [output for cell in committed.cells for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.output_type == "error"]
    text = outputs_text(committed)
    assert f"tracking store: {uri}" in text
    table_cell = next(cell for cell in committed.cells if "tables.build_table" in cell.source)
    table_text = outputs_text(nbformat.from_dict({"cells": [table_cell]}))
    for radius in RADII:
        assert radius in table_text
    assert table_text.index("3.0") < table_text.index("12.0")
    assert "62.00 ± 1.41" in table_text and "1 run excluded: failed/unfinished (1 FAILED)." in table_text
    assert any("image/png" in output.get("data", {}) for output in outputs)
