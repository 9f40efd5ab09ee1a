"""MLflow runs under the tracking contract (asva/tracking/store.py): experiments, nesting, logging.

Everything goes through an explicit `MlflowClient` and run id, not MLflow's global "active run",
so a job can open a second run (a shared pretraining) while its own is open.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

import mlflow
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient

from asva.config.hashing import stable_hash
from asva.tracking import metadata
from asva.tracking.store import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    PARENT_TAG,
    ROLE_TAG,
    STUDY_TAG,
    artifact_root,
    prepare_store,
    retry_when_busy,
    tracking_uri,
)

MAX_PARAMS_PER_BATCH = 100
METRIC_FLUSH_EVERY = 25


class BusyRetryingClient:
    """An MlflowClient whose every call is retried while the store is busy (see retry_when_busy)."""

    def __init__(self, uri: str):
        self._client = MlflowClient(tracking_uri=uri)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute
        return lambda *args, **kwargs: retry_when_busy(attribute, *args, **kwargs)


def client() -> MlflowClient:
    """A client of the tracking store, its schema created first when it is a fresh SQLite file."""
    return BusyRetryingClient(prepare_store(tracking_uri()))  # type: ignore[return-value]


def experiment_id(name: str) -> str:
    """The experiment named `name`, created (with a local artifact folder) if missing, and tagged
    as a model-development experiment so that the MLflow UI opens it on its runs.

    An experiment created before the tag existed gets it here, when a run is next logged into it;
    a kind set otherwise (chosen in the UI) is left as it is.
    """
    mlflow_client = client()
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is None:
        location = None
        if tracking_uri().startswith("sqlite:"):
            location = (artifact_root() / name).resolve().as_uri()
        try:
            return mlflow_client.create_experiment(
                name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
            )
        except mlflow.exceptions.MlflowException:  # created meanwhile by a concurrent job
            experiment = mlflow_client.get_experiment_by_name(name)
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        mlflow_client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """{"a": {"b": 1}} -> {"a.b": "1"}; lists become their JSON text."""
    if isinstance(tree, dict):
        out: dict[str, str] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    value = json.dumps(tree) if isinstance(tree, (list, tuple)) else str(tree)
    return {prefix.rstrip("."): value}


def config_hash(config: dict) -> str:
    return stable_hash(config, length=16)


class RunLogger:
    """One MLflow run: params, buffered metric curves, metrics, artifacts, its end state."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self._client = client()
        self._pending: list[Metric] = []

    @classmethod
    def create(
        cls, study: str, role: str, name: str, parent_run_id: str | None = None, tags: dict[str, str] | None = None
    ) -> RunLogger:
        all_tags = {STUDY_TAG: study, ROLE_TAG: role, **(tags or {})}
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        env = metadata.environment()
        all_tags.update(metadata.run_tags(env))
        run = client().create_run(experiment_id(study), run_name=name, tags=all_tags)
        logger = cls(run.info.run_id)
        logger.log_text(json.dumps(env, indent=2, sort_keys=True) + "\n", metadata.ENVIRONMENT_ARTIFACT)
        return logger

    def status(self) -> str:
        return self._client.get_run(self.run_id).info.status

    def reopen(self) -> None:
        """Mark the run running again, recording where this attempt runs (new SLURM job, node, code)."""
        self._client.update_run(self.run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        env = metadata.environment()
        self.set_tags(metadata.run_tags(env))
        self.log_text(json.dumps(env, indent=2, sort_keys=True) + "\n", metadata.ENVIRONMENT_ARTIFACT)

    def log_params(self, params: dict[str, str]) -> None:
        logged = self._client.get_run(self.run_id).data.params
        fresh = [Param(k, str(v)) for k, v in params.items() if k not in logged]
        for start in range(0, len(fresh), MAX_PARAMS_PER_BATCH):
            self._client.log_batch(self.run_id, params=fresh[start : start + MAX_PARAMS_PER_BATCH])

    def set_tags(self, tags: dict[str, str]) -> None:
        self._client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_curve_point(self, key: str, value: float, step: int) -> None:
        self._pending.append(Metric(key, value, int(time.time() * 1000), step))
        if len(self._pending) >= METRIC_FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._client.log_batch(self.run_id, metrics=self._pending)
            self._pending = []

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        self._client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        self._client.log_artifact(self.run_id, str(path), folder)

    def log_text(self, text: str, name: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_text(text)
            self.log_artifact(path)

    def log_files(self, paths: Iterable[Path], folder: str) -> None:
        for path in paths:
            self.log_artifact(path, folder)

    def finish(self, status: str = "FINISHED") -> None:
        self.flush()
        self._client.set_terminated(self.run_id, status=status)
