"""analysis/: tables and figures from real MLflow runs logged under the tracking contract."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from analysis import make_tables, runs, tables
from asva.tracking.store import PARENT_TAG, ROLE_JOB, ROLE_PRETRAIN, ROLE_SWEEP, ROLE_TAG, STUDY_TAG

REPO_ROOT = Path(__file__).resolve().parents[1]


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
            self.experiments[name] = self.client.create_experiment(name, artifact_location=(self.artifacts / name).as_uri())
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

    def job(self, experiment: str, study: str, parent: str, metrics: dict[str, float], status: str = "FINISHED", **params: str) -> None:
        base = {"dataset": "synthetic", "fps": "6", "window_radius": "0.5", "audio_layers": "a:11", "k": "all", "pretrain": "false"}
        base |= {"curation": "none", "finetune": "true", "seed": "0", "config_hash": f"h{self.job_count}"}
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
    ("5", "false"): [(91.0, 350.0)],
    ("5", "true"): [(95.0, 306.1)],
    ("10", "false"): [(93.0, 352.6)],
    ("10", "true"): [(94.0, 292.1)],
    ("all", "false"): [(94.24, 277.5)],
    ("all", "true"): [(94.48, 258.1)],
}
# The paper's AVSync15 K=1 numbers, under the paper metric names.
AVSYNC15 = {"false": {"fvd": 391.8, "relsync": 90.32, "alignsync": 90.00}, "true": {"fvd": 319.7, "relsync": 94.40, "alignsync": 94.28}}


def log_studies(writer: StoreWriter) -> dict[str, str]:
    parents = {study: writer.run(study, study, ROLE_SWEEP, metrics={"event_sync": 999.0}) for study in ("window_radius", "encoder_layers", "kshot")}
    for radius, seeds in WINDOW_RADIUS.items():
        for seed, (sync, fd, null) in enumerate(seeds):
            metrics = {"event_sync": sync, "fd_pixel_synth": fd, "event_sync_null_audio": null} | SYNTH_REFS
            writer.job("window_radius", "window_radius", parents["window_radius"], metrics, window_radius=radius, seed=str(seed))
    writer.job("window_radius", "window_radius", parents["window_radius"], {"event_sync": 0.0, "fd_pixel_synth": 999.0}, status="FAILED", window_radius="1.5", seed="3")
    for layers, seeds in ENCODER_LAYERS.items():
        for seed, sync in enumerate(seeds):
            metrics = {"event_sync": sync, "event_sync_null_audio": 10.0} | SYNTH_REFS
            writer.job("encoder_layers", "encoder_layers", parents["encoder_layers"], metrics, audio_layers=layers, seed=str(seed))
    writer.run("kshot", "kshot", ROLE_PRETRAIN, {"dataset": "synthetic"}, {"train_loss": 0.1, "curation_kept": 40.0, "event_sync": 999.0}, parents["kshot"])
    for (k, pretrain), seeds in KSHOT.items():
        for seed, (sync, fd) in enumerate(seeds):
            metrics = {"event_sync": sync, "fd_pixel_synth": fd, "event_sync_null_audio": 10.0} | SYNTH_REFS
            writer.job("kshot", "kshot", parents["kshot"], metrics, k=k, pretrain=pretrain, seed=str(seed))
    writer.job("kshot", "kshot", parents["kshot"], {}, status=None, k="1", pretrain="true", seed="2")
    # Another experiment name on purpose: runs are found by their tags.
    for pretrain, metrics in AVSYNC15.items():
        writer.job("kshot_avsync15", "kshot", "", metrics, dataset="avsync15", k="1", pretrain=pretrain)
    return parents


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


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with store_folder(tmp_path_factory) as root, pytest.MonkeyPatch.context() as patch:
        uri = f"sqlite:///{root}/mlflow.db"
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        writer = StoreWriter(uri, root / "artifacts")
        parents = log_studies(writer)
        yield Store(uri, parents, writer.job_count)


@pytest.fixture(scope="module")
def job_runs(store: Store) -> pd.DataFrame:
    return runs.load_job_runs()


def rows(table: tables.Table) -> list[list[str]]:
    return table.display.astype(str).values.tolist()


def test_load_job_runs_keeps_only_job_runs_with_params_and_metrics(store: Store, job_runs: pd.DataFrame) -> None:
    assert len(job_runs) == store.job_count
    assert set(job_runs["role"]) == {ROLE_JOB}
    assert job_runs["status"].value_counts().to_dict() == {"FINISHED": store.job_count - 2, "FAILED": 1, "RUNNING": 1}
    assert set(job_runs["experiment"]) == {"window_radius", "encoder_layers", "kshot", "kshot_avsync15"}
    assert {"dataset", "window_radius", "k", "pretrain", "seed", "event_sync", "fvd", "train_loss"} <= set(job_runs.columns)
    assert job_runs["window_radius"].map(type).eq(str).all()  # params stay strings
    assert "event_sync_ref_groundtruth" in runs.metric_columns(job_runs)
    assert "dataset" not in runs.metric_columns(job_runs)


def test_load_job_runs_filters_in_one_query(store: Store) -> None:
    assert set(runs.load_job_runs(dataset="avsync15")["k"]) == {"1"}
    assert len(runs.load_job_runs(parent_run_id=store.parents["encoder_layers"])) == 6
    assert set(runs.load_job_runs(experiment="kshot_avsync15")["dataset"]) == {"avsync15"}
    assert runs.load_job_runs(experiment="no such experiment").empty
    assert runs.load_job_runs(uri="sqlite:////nonexistent/folder/mlflow.db").empty
    assert "asva.study" in runs.job_filter(study="kshot")


def test_metric_registry_formats_and_orders() -> None:
    fd, sync = tables.metric_info("fd_pixel_synth"), tables.metric_info("event_sync")
    assert fd.header == "FD-pixel (synthetic) ↓" and sync.header == "EventSync (synthetic) ↑"
    assert tables.metric_info("fvd").header == "FVD ↓" and tables.metric_info("alignsync").header == "AlignSync ↑"
    assert fd.cell(319.71, 3.14, 3, gain=-72.1) == "319.7 ± 3.1 (↓72.1)"
    assert sync.cell(94.281, 0.123, 3, gain=4.28) == "94.28 ± 0.12 (↑4.28)"
    assert sync.cell(94.28, math.nan, 1) == "94.28"
    assert sync.cell(math.nan, math.nan, 0) == tables.MISSING
    assert tables.metric_info("fd_flow_synth").decimals == 1 and tables.metric_info("clip_score").decimals == 2
    assert tables.metric_info("event_sync_null_audio").header == "EventSync (synthetic), null audio"
    names = ["zeta", "event_sync", "event_sync_null_audio", "fd_pixel_synth", "alpha", "relsync", "fvd", "alignsync", "it", "ia"]
    assert sorted(names, key=tables.metric_sort_key) == [
        "fvd", "ia", "it", "relsync", "alignsync", "fd_pixel_synth", "event_sync", "event_sync_null_audio", "alpha", "zeta",
    ]  # fmt: skip


def test_window_radius_table(job_runs: pd.DataFrame) -> None:
    table = tables.build_table(job_runs, "window_radius")
    assert table is not None
    assert list(table.display.columns) == ["Dataset", "Radius (1/FPS)", "n", "FD-pixel (synthetic) ↓", "EventSync (synthetic) ↑", "EventSync (synthetic), null audio"]
    assert rows(table) == [
        ["synthetic", "Groundtruth", "", "–", "95.00", "–"],
        ["synthetic", "Static", "", "400.0", "5.00", "–"],
        ["synthetic", "0.5", "3", "110.0 ± 10.0", "62.00 ± 2.00", "10.00 ± 0.00"],
        ["synthetic", "1.5", "3", "91.0 ± 1.7", "71.00 ± 1.00", "12.00 ± 0.00"],  # the FAILED seed is not averaged
        ["synthetic", "3.0", "2", "155.0 ± 7.1", "52.00 ± 2.83", "11.00 ± 0.00"],
        ["synthetic", "12.0", "1", "200.0", "30.50", "9.00"],
    ]
    assert table.excluded == {"FAILED": 1}
    assert table.footnote() == "1 run excluded: failed/unfinished (1 FAILED)."
    markdown = table.to_markdown()
    assert "| 12.0 " in markdown and markdown.rstrip().endswith("(1 FAILED).")
    assert "train_loss" not in table.numeric.columns and "num_test_clips_mean" not in table.numeric.columns


def test_encoder_layers_table(job_runs: pd.DataFrame) -> None:
    table = tables.build_table(job_runs, "encoder_layers")
    assert table is not None
    assert [row[1] for row in rows(table)] == ["Groundtruth", "Static", "a:11", "a:3-7-11", "a:7-9-11", "a:3-7-11+b:3-7-11"]
    assert rows(table)[2][2:4] == ["2", "61.00 ± 1.41"]
    assert rows(table)[5][2:] == ["1", "80.00", "10.00"]
    assert table.footnote() == "0 runs excluded: failed/unfinished."


def test_kshot_table_has_table3_layout_and_pretraining_gains(job_runs: pd.DataFrame) -> None:
    table = tables.build_table(job_runs, "kshot")
    assert table is not None
    assert list(table.display.columns) == [
        "Dataset", "K", "Pretrain", "n", "FVD ↓", "RelSync ↑", "AlignSync ↑", "FD-pixel (synthetic) ↓", "EventSync (synthetic) ↑",
    ]  # fmt: skip
    table_rows = rows(table)
    assert [row[:4] for row in table_rows] == [
        ["avsync15", "1", "✗", "1"],
        ["avsync15", "1", "✓", "1"],
        ["synthetic", "Groundtruth", "", ""],
        ["synthetic", "Static", "", ""],
        ["synthetic", "0", "✓", "2"],
        ["synthetic", "1", "✗", "2"],
        ["synthetic", "1", "✓", "2"],  # the RUNNING seed is not averaged
        ["synthetic", "5", "✗", "1"],
        ["synthetic", "5", "✓", "1"],
        ["synthetic", "10", "✗", "1"],
        ["synthetic", "10", "✓", "1"],
        ["synthetic", "all", "✗", "1"],
        ["synthetic", "all", "✓", "1"],
    ]
    assert table_rows[1][4:7] == ["319.7 (↓72.1)", "94.40 (↑4.08)", "94.28 (↑4.28)"]
    assert table_rows[1][7:] == ["–", "–"]
    assert table_rows[4][7:] == ["305.0 ± 7.1", "81.00 ± 1.41"]  # K=0: no finetune-only row, no gain
    assert table_rows[5][7:] == ["391.8 ± 2.5", "90.00 ± 0.00"]
    assert table_rows[6][7:] == ["319.7 ± 0.0 (↓72.1)", "94.28 ± 0.17 (↑4.28)"]
    assert table_rows[12][7:] == ["258.1 (↓19.4)", "94.48 (↑0.24)"]
    assert "event_sync_null_audio_mean" not in table.numeric.columns
    assert table.footnote() == "1 run excluded: failed/unfinished (1 RUNNING)."
    gains = table.numeric.set_index(["dataset", "k", "pretrain"])["event_sync_gain"]
    assert gains[("synthetic", "1", "true")] == pytest.approx(4.28)
    assert math.isnan(gains[("synthetic", "1", "false")]) and math.isnan(gains[("synthetic", "0", "true")])


def test_tables_group_by_fps_when_several() -> None:
    frame = pd.DataFrame(
        {
            "run_id": ["a", "b", "c"],
            "study": "window_radius",
            "status": "FINISHED",
            "dataset": "avsync15",
            "fps": ["12", "6", "6"],
            "window_radius": ["1.50", "1.5", "0.5"],
            "relsync": [93.0, 93.6, 93.38],
        }
    )
    table = tables.build_table(frame, "window_radius")
    assert table is not None
    assert rows(table) == [["avsync15", "6", "0.5", "1", "93.38"], ["avsync15", "6", "1.5", "1", "93.60"], ["avsync15", "12", "1.5", "1", "93.00"]]
    assert tables.build_table(frame.assign(status="FAILED"), "window_radius") is None
    assert tables.skip_message(frame.assign(status="FAILED"), "window_radius") == "window_radius: no finished job runs (3 excluded: failed/unfinished), skipped."


def test_main_prints_markdown_and_writes_csv_md_png(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert make_tables.main(["--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "### Audio window radius (Fig. 4b)" in printed and "### K-shot finetuning" in printed
    assert "| synthetic | 0.5              | 3   | 110.0 ± 10.0" in printed
    assert "94.28 ± 0.17 (↑4.28)" in printed and "1 run excluded: failed/unfinished (1 FAILED)." in printed
    for study in ("window_radius", "encoder_layers", "kshot"):
        assert (tmp_path / f"{study}.md").read_text().startswith("### ")
        assert (tmp_path / f"{study}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = pd.read_csv(tmp_path / "kshot.csv", dtype={"k": str, "pretrain": str})
    assert {"fvd_mean", "fvd_std", "fvd_n", "fvd_gain", "event_sync_gain"} <= set(numbers.columns)
    row = numbers[(numbers["dataset"] == "avsync15") & (numbers["pretrain"] == "true")].iloc[0]
    assert row["fvd_gain"] == pytest.approx(-72.1) and row["alignsync_gain"] == pytest.approx(4.28)
    radius = pd.read_csv(tmp_path / "window_radius.csv")
    assert radius.loc[radius["window_radius"] == 0.5, ["event_sync_mean", "event_sync_std", "event_sync_n"]].values.tolist() == [[62.0, 2.0, 3]]


def test_main_filters_and_skips(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert make_tables.main(["--dataset", "avsync15", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "window_radius: no finished job runs, skipped." in printed and "encoder_layers: no finished job runs, skipped." in printed
    assert "| avsync15  | 1   | ✓          | 1   | 319.7 (↓72.1)" in printed and "synthetic" not in printed
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kshot.csv", "kshot.md", "kshot.png"]

    assert make_tables.main(["--parent-run-id", store.parents["window_radius"], "--study", "window_radius", "--out", str(tmp_path)]) == 0
    assert "62.00 ± 2.00" in capsys.readouterr().out

    assert make_tables.main(["--dataset", "nope", "--out", str(tmp_path / "none")]) == 0
    assert capsys.readouterr().out.startswith("No job runs (tag asva.role=job) matching {'dataset': 'nope'}")
    assert not (tmp_path / "none").exists()


def test_script_runs_from_the_repo_root(store: Store, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "analysis/make_tables.py", "--study", "encoder_layers", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        env=os.environ | {"MLFLOW_TRACKING_URI": store.uri},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "a:3-7-11+b:3-7-11" in result.stdout
    assert (tmp_path / "encoder_layers.png").exists()
