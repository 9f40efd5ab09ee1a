"""Four studies' runs for the tests of analysis/, logged to a throwaway MLflow store as the project's jobs
log them (the store's fixtures, study_store and study_job_runs, are in conftest.py), and helpers that
read tables and figures."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from scipy import stats as scipy_stats

from analysis import tables
from asva.tracking.store import PARENT_TAG, ROLE_JOB, ROLE_PRETRAIN, ROLE_SWEEP, ROLE_TAG, STUDY_TAG

# The contract params of a job at the embedded default, which a test's job overrides where its study varies.
EMBEDDED_JOB_PARAMS = {
    "dataset": "synthetic",
    "fps": "6",
    "window_radius": "0.5",
    "audio_layers": "a:11",
    "k": "all",
    "pretrain": "false",
    "curation": "none",
    "finetune": "true",
}


@dataclass
class Store:
    uri: str
    parents: dict[str, str]  # study -> sweep parent run id
    job_count: int


class StoreWriter:
    """Logs runs the way asva/tracking/runs.py does: explicit client, tags, one batch per run."""

    def __init__(self, uri: str, artifacts: Path):
        self.client = MlflowClient(tracking_uri=uri)
        self.artifacts = artifacts
        self.experiments: dict[str, str] = {}
        self.job_count = 0

    def experiment(self, name: str) -> str:
        if name not in self.experiments:
            self.experiments[name] = self.client.create_experiment(
                name, artifact_location=(self.artifacts / name).as_uri()
            )
        return self.experiments[name]

    def run(
        self,
        experiment: str,
        study: str,
        role: str,
        params: dict[str, str] | None = None,
        metrics: dict[str, float] | None = None,
        parent: str | None = None,
        status: str | None = "FINISHED",
    ) -> str:
        tags = {STUDY_TAG: study, ROLE_TAG: role} | ({PARENT_TAG: parent} if parent else {})
        run = self.client.create_run(self.experiment(experiment), tags=tags, run_name=f"{study}-{role}")
        logged = [Metric(name, value, 0, 0) for name, value in (metrics or {}).items()]
        if role == ROLE_JOB:
            logged += [Metric("train_loss", 1.0 / (step + 1), 0, step) for step in range(3)]  # a curve
            logged.append(Metric("num_test_clips", 8.0, 0, 0))
            self.job_count += 1
        self.client.log_batch(
            run.info.run_id,
            metrics=logged,
            params=[Param(k, v) for k, v in (params or {}).items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        if status is not None:  # None: left RUNNING
            self.client.set_terminated(run.info.run_id, status=status)
        return run.info.run_id

    def job(
        self,
        experiment: str,
        study: str,
        parent: str,
        metrics: dict[str, float],
        status: str = "FINISHED",
        **params: str,
    ) -> None:
        base = EMBEDDED_JOB_PARAMS | {"seed": "0", "config_hash": f"h{self.job_count}"}
        self.run(experiment, study, ROLE_JOB, base | params, metrics, parent, status)


SYNTH_REFS = {"event_sync_ref_groundtruth": 95.0, "event_sync_ref_static": 5.0, "fd_pixel_synth_ref_static": 400.0}

# window radius -> per seed (event_sync, fd_pixel_synth, event_sync_null_audio)
WINDOW_RADIUS = {
    "0.5": [(60.0, 100.0, 10.0), (62.0, 110.0, 10.0), (64.0, 120.0, 10.0)],
    "1.5": [(70.0, 90.0, 12.0), (71.0, 90.0, 12.0), (72.0, 93.0, 12.0)],
    "3.0": [(50.0, 150.0, 11.0), (54.0, 160.0, 11.0)],
    "12.0": [(30.5, 200.0, 9.0)],
}
ENCODER_LAYERS = {"a:3-7-11+b:3-7-11": [80.0], "a:11": [60.0, 62.0], "a:7-9-11": [66.0], "a:3-7-11": [70.0, 70.0]}
# (k, pretrain) -> per seed (event_sync, fd_pixel_synth)
KSHOT = {
    ("0", "true"): [(80.0, 300.0), (82.0, 310.0)],
    ("1", "false"): [(90.0, 390.0), (90.0, 393.6)],
    ("1", "true"): [(94.16, 319.7), (94.40, 319.7)],
    ("2", "false"): [(90.0, 380.0), (91.0, 380.0), (92.0, 380.0)],
    ("2", "true"): [(91.0, 370.0), (90.5, 371.0), (93.5, 372.0)],
    ("5", "false"): [(91.0, 350.0)],
    ("5", "true"): [(95.0, 306.1)],
    ("10", "false"): [(93.0, 352.6)],
    ("10", "true"): [(94.0, 292.1)],
    ("all", "false"): [(94.24, 277.5)],
    ("all", "true"): [(94.48, 258.1)],
}
# The paper's AVSync15 K=1 numbers, under the paper metric names.
AVSYNC15 = {
    "false": {"fvd": 391.8, "relsync": 90.32, "alignsync": 90.00},
    "true": {"fvd": 319.7, "relsync": 94.40, "alignsync": 94.28},
}
# (curation, finetune) -> per seed (fvd_embedded, relsync_embedded, relsync_embedded_openclass)
CURATION = {
    ("none", "false"): [(1.300, 80.0, 70.0), (1.310, 82.0, 70.0)],
    ("none", "true"): [(1.250, 85.0, 71.0), (1.262, 88.0, 73.0)],
    ("auto", "false"): [(1.290, 84.0, 72.0), (1.290, 84.0, 74.0)],
    ("auto", "true"): [(1.240, 90.0, 75.0), (1.244, 91.0, 75.0)],
}


def log_studies(writer: StoreWriter) -> dict[str, str]:
    studies = ("window_radius", "encoder_layers", "kshot", "curation")
    parents = {study: writer.run(study, study, ROLE_SWEEP, metrics={"event_sync": 999.0}) for study in studies}
    for radius, seeds in WINDOW_RADIUS.items():
        for seed, (sync, fd, null) in enumerate(seeds):
            metrics = {"event_sync": sync, "fd_pixel_synth": fd, "event_sync_null_audio": null} | SYNTH_REFS
            writer.job(
                "window_radius",
                "window_radius",
                parents["window_radius"],
                metrics,
                window_radius=radius,
                seed=str(seed),
            )
    writer.job(
        "window_radius",
        "window_radius",
        parents["window_radius"],
        {"event_sync": 0.0, "fd_pixel_synth": 999.0},
        status="FAILED",
        window_radius="1.5",
        seed="3",
    )
    for layers, seeds in ENCODER_LAYERS.items():
        for seed, sync in enumerate(seeds):
            metrics = {"event_sync": sync, "event_sync_null_audio": 10.0} | SYNTH_REFS
            writer.job(
                "encoder_layers",
                "encoder_layers",
                parents["encoder_layers"],
                metrics,
                audio_layers=layers,
                seed=str(seed),
            )
    writer.run(
        "kshot",
        "kshot",
        ROLE_PRETRAIN,
        {"dataset": "synthetic"},
        {"train_loss": 0.1, "curation_kept": 40.0, "event_sync": 999.0},
        parents["kshot"],
    )
    for (k, pretrain), seeds in KSHOT.items():
        for seed, (sync, fd) in enumerate(seeds):
            metrics = {"event_sync": sync, "fd_pixel_synth": fd, "event_sync_null_audio": 10.0} | SYNTH_REFS
            writer.job("kshot", "kshot", parents["kshot"], metrics, k=k, pretrain=pretrain, seed=str(seed))
    writer.job("kshot", "kshot", parents["kshot"], {}, status=None, k="1", pretrain="true", seed="2")
    # Another experiment name on purpose: runs are found by their tags.
    for pretrain, metrics in AVSYNC15.items():
        writer.job("kshot_avsync15", "kshot", "", metrics, dataset="avsync15", k="1", pretrain=pretrain)
    for (curation, finetune), seeds in CURATION.items():
        for seed, (fvd, relsync, openclass) in enumerate(seeds):
            metrics = {"fvd_embedded": fvd, "relsync_embedded": relsync, "relsync_embedded_openclass": openclass}
            writer.job(
                "curation",
                "curation",
                parents["curation"],
                metrics,
                curation=curation,
                finetune=finetune,
                pretrain="true",
                seed=str(seed),
            )
    writer.job(
        "curation",
        "curation",
        parents["curation"],
        {"fvd_embedded": 9.0},
        status="KILLED",
        curation="auto",
        finetune="true",
        pretrain="true",
        seed="2",
    )
    return parents


def t_test_p(differences: list[float]) -> float:
    """Two-sided p of the paired t-test from its textbook formula: t = mean / (sd / sqrt(n))."""
    n = len(differences)
    mean = sum(differences) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1))
    return 2 * scipy_stats.t.sf(abs(mean / (sd / math.sqrt(n))), df=n - 1)


@contextmanager
def store_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder for a throwaway SQLite store, in memory when the system has /dev/shm.

    MLflow's schema creation and run logging fsync at every commit: on disk that is 10 s for
    this store, in memory 3 s.
    """
    if Path("/dev/shm").is_dir():
        with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="asva-mlflow-") as folder:
            yield Path(folder)
    else:
        yield tmp_path_factory.mktemp("mlflow")


@contextmanager
def logged_studies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The studies in a throwaway store, MLFLOW_TRACKING_URI pointing at it until the context ends."""
    with store_folder(tmp_path_factory) as root, pytest.MonkeyPatch.context() as patch:
        uri = f"sqlite:///{root}/mlflow.db"
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        writer = StoreWriter(uri, root / "artifacts")
        parents = log_studies(writer)
        yield Store(uri, parents, writer.job_count)


def rows(table: tables.Table) -> list[list[str]]:
    return table.display.astype(str).values.tolist()


def panel_layout(figure) -> list[tuple[str, float]]:
    """(title, width in px of the PNG at 120 dpi) of each panel drawn, in reading order."""
    figure.draw_without_rendering()  # applies the constrained layout
    panels = [ax for ax in figure.axes if ax.axison]
    return [(ax.get_title(), ax.get_position().width * figure.get_figwidth() * 120) for ax in panels]
