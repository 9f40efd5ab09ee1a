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

from scipy import stats as scipy_stats

from analysis import budget, make_tables, outputs, runs, tables
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
AVSYNC15 = {"false": {"fvd": 391.8, "relsync": 90.32, "alignsync": 90.00}, "true": {"fvd": 319.7, "relsync": 94.40, "alignsync": 94.28}}
# (curation, finetune) -> per seed (fvd_embedded, relsync_embedded, relsync_embedded_openclass)
CURATION = {
    ("none", "false"): [(300.0, 80.0, 70.0), (310.0, 82.0, 70.0)],
    ("none", "true"): [(250.0, 85.0, 71.0), (262.0, 88.0, 73.0)],
    ("auto", "false"): [(290.0, 84.0, 72.0), (290.0, 84.0, 74.0)],
    ("auto", "true"): [(240.0, 90.0, 75.0), (244.0, 91.0, 75.0)],
}


def log_studies(writer: StoreWriter) -> dict[str, str]:
    studies = ("window_radius", "encoder_layers", "kshot", "curation")
    parents = {study: writer.run(study, study, ROLE_SWEEP, metrics={"event_sync": 999.0}) for study in studies}
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
    for (curation, finetune), seeds in CURATION.items():
        for seed, (fvd, relsync, openclass) in enumerate(seeds):
            metrics = {"fvd_embedded": fvd, "relsync_embedded": relsync, "relsync_embedded_openclass": openclass}
            writer.job("curation", "curation", parents["curation"], metrics, curation=curation, finetune=finetune, pretrain="true", seed=str(seed))
    writer.job("curation", "curation", parents["curation"], {"fvd_embedded": 1.0}, status="KILLED", curation="auto", finetune="true", pretrain="true", seed="2")
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
    assert job_runs["status"].value_counts().to_dict() == {"FINISHED": store.job_count - 3, "FAILED": 1, "RUNNING": 1, "KILLED": 1}
    assert set(job_runs["experiment"]) == {"window_radius", "encoder_layers", "kshot", "kshot_avsync15", "curation"}
    assert {"dataset", "window_radius", "k", "pretrain", "seed", "event_sync", "fvd", "train_loss"} <= set(job_runs.columns)
    assert job_runs["window_radius"].map(type).eq(str).all()  # params stay strings
    assert "event_sync_ref_groundtruth" in runs.metric_columns(job_runs)
    assert "dataset" not in runs.metric_columns(job_runs) and "model_name" not in runs.metric_columns(job_runs)


def test_load_job_runs_filters_in_one_query(store: Store) -> None:
    assert set(runs.load_job_runs(dataset="avsync15")["k"]) == {"1"}
    assert len(runs.load_job_runs(parent_run_id=store.parents["encoder_layers"])) == 6
    assert set(runs.load_job_runs(experiment="kshot_avsync15")["dataset"]) == {"avsync15"}
    assert set(runs.load_job_runs(study="curation")["curation"]) == {"none", "auto"}
    assert runs.load_job_runs(experiment="no such experiment").empty
    assert runs.load_job_runs(uri="sqlite:////nonexistent/folder/mlflow.db").empty
    assert "asva.study" in runs.job_filter(study="kshot")


def test_metric_registry_formats_and_orders() -> None:
    fd, sync = tables.metric_info("fd_pixel_synth"), tables.metric_info("event_sync")
    assert fd.header == "FD-pixel (synthetic) ↓" and sync.header == "EventSync (synthetic) ↑"
    assert tables.metric_info("fvd").header == "FVD ↓" and tables.metric_info("alignsync").header == "AlignSync ↑"
    assert fd.cell(319.71, 3.14, 3, gain=-72.1) == "319.7 ± 3.1 (↓72.1)"
    assert sync.cell(94.281, 0.123, 3, gain=4.28, mark="†") == "94.28 ± 0.12 (↑4.28)†"
    assert sync.cell(94.28, math.nan, 1) == "94.28"
    assert sync.cell(math.nan, math.nan, 0) == tables.MISSING
    assert tables.metric_info("fd_flow_synth").decimals == 1 and tables.metric_info("clip_score").decimals == 2
    assert tables.metric_info("event_sync_null_audio").header == "EventSync (synthetic), null audio"
    assert tables.metric_info("fvd_embedded").header == "FVD (embedded) ↓"
    assert tables.metric_info("relsync_embedded_openclass").header == "RelSync (embedded), open-class ↑"
    assert tables.metric_info("alignsync_openclass").decimals == 2
    names = ["zeta", "event_sync", "event_sync_null_audio", "fd_pixel_synth", "alpha", "relsync", "fvd", "alignsync", "it", "ia"]
    names += ["relsync_embedded", "relsync_openclass", "relsync_embedded_openclass", "fvd_embedded"]
    assert sorted(names, key=tables.metric_sort_key) == [
        "fvd", "fvd_embedded", "ia", "it", "relsync", "relsync_openclass", "relsync_embedded", "relsync_embedded_openclass",
        "alignsync", "fd_pixel_synth", "event_sync", "event_sync_null_audio", "alpha", "zeta",
    ]  # fmt: skip


def test_fig4b_window_radius_table(job_runs: pd.DataFrame) -> None:
    table = tables.build_table(job_runs, "fig4b")
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
    assert table.footnote() == "mean ± std over seeds (n runs); 1 run excluded: failed/unfinished (1 FAILED)."
    markdown = table.to_markdown()
    assert "| 12.0 " in markdown and markdown.rstrip().endswith("(1 FAILED).")
    assert "train_loss" not in table.numeric.columns and "num_test_clips_mean" not in table.numeric.columns


def test_fig4a_encoder_layers_table(job_runs: pd.DataFrame) -> None:
    table = tables.build_table(job_runs, "fig4a")
    assert table is not None
    assert [row[1] for row in rows(table)] == ["Groundtruth", "Static", "a:11", "a:3-7-11", "a:7-9-11", "a:3-7-11+b:3-7-11"]
    assert rows(table)[2][2:4] == ["2", "61.00 ± 1.41"]
    assert rows(table)[5][2:] == ["1", "80.00", "10.00"]
    assert table.footnote() == "mean ± std over seeds (n runs); 0 runs excluded: failed/unfinished."


def test_table3_layout_gains_and_paired_tests(job_runs: pd.DataFrame) -> None:
    table = tables.build_table(job_runs, "table3")
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
        ["synthetic", "2", "✗", "3"],
        ["synthetic", "2", "✓", "3"],
        ["synthetic", "5", "✗", "1"],
        ["synthetic", "5", "✓", "1"],
        ["synthetic", "10", "✗", "1"],
        ["synthetic", "10", "✓", "1"],
        ["synthetic", "all", "✗", "1"],
        ["synthetic", "all", "✓", "1"],
    ]
    # One run per paradigm: a gain, but nothing to test it with (‡).
    assert table_rows[1][4:7] == ["319.7 (↓72.1)‡", "94.40 (↑4.08)‡", "94.28 (↑4.28)‡"]
    assert table_rows[1][7:] == ["–", "–"]
    assert table_rows[4][7:] == ["305.0 ± 7.1", "81.00 ± 1.41"]  # K=0: no finetune-only row, no gain
    assert table_rows[5][7:] == ["391.8 ± 2.5", "90.00 ± 0.00"]
    # K=1, seeds 0 and 1 on both sides: FD differences -70.3, -73.9; EventSync 4.16, 4.40: significant.
    assert table_rows[6][7:] == ["319.7 ± 0.0 (↓72.1)", "94.28 ± 0.17 (↑4.28)"]
    # K=2: EventSync differences 1.0, -0.5, 1.5 (p = 0.38: marked); FD -10, -9, -8 (p = 0.004).
    assert table_rows[8][7:] == ["371.0 ± 1.0 (↓9.0)", "91.67 ± 1.61 (↑0.67)†"]
    assert table_rows[14][7:] == ["258.1 (↓19.4)‡", "94.48 (↑0.24)‡"]
    assert "event_sync_null_audio_mean" not in table.numeric.columns
    assert table.footnote().startswith("mean ± std over seeds (n runs); 1 run excluded: failed/unfinished (1 RUNNING). (↑/↓x): pretraining gain")
    numbers = table.numeric.set_index(["dataset", "k", "pretrain"])
    k1, k2 = numbers.loc[("synthetic", "1", "true")], numbers.loc[("synthetic", "2", "true")]
    assert k1["event_sync_gain"] == pytest.approx(4.28) and k1["event_sync_gain_pairs"] == 2
    assert k1["event_sync_gain_p"] == pytest.approx(t_test_p([4.16, 4.40]))
    assert k1["fd_pixel_synth_gain_p"] == pytest.approx(t_test_p([-70.3, -73.9])) and k1["fd_pixel_synth_gain_p"] < 0.05
    # Two pairs: resampled means are 4.16, 4.28 or 4.40 with chance 1/4, 1/2, 1/4; 95% spans them.
    assert (k1["event_sync_gain_ci_low"], k1["event_sync_gain_ci_high"]) == (pytest.approx(4.16), pytest.approx(4.40))
    assert k2["event_sync_gain"] == pytest.approx(2 / 3) and k2["event_sync_gain_pairs"] == 3
    assert k2["event_sync_gain_p"] == pytest.approx(t_test_p([1.0, -0.5, 1.5])) and k2["event_sync_gain_p"] > 0.05
    assert k2["event_sync_gain_ci_low"] < 0 < k2["event_sync_gain_ci_high"]
    assert k2["fd_pixel_synth_gain_p"] == pytest.approx(t_test_p([-10.0, -9.0, -8.0]))
    assert math.isnan(numbers.loc[("synthetic", "1", "false"), "event_sync_gain"]) and math.isnan(numbers.loc[("synthetic", "0", "true"), "event_sync_gain"])


def test_table2_curation_with_finetuning_gains_and_openclass_beside(job_runs: pd.DataFrame) -> None:
    table = tables.build_table(job_runs, "table2")
    assert table is not None
    assert list(table.display.columns) == ["Dataset", "Curation", "Finetune", "n", "FVD (embedded) ↓", "RelSync (embedded) ↑", "RelSync (embedded), open-class ↑"]
    # Finetuning gains, per curation: relsync none 5, 6 (p = 0.058: †); auto 6, 7 (p = 0.049); FVD none -50, -48.
    assert rows(table) == [
        ["synthetic", "none", "✗", "2", "305.0 ± 7.1", "81.00 ± 1.41", "70.00 ± 0.00"],
        ["synthetic", "none", "✓", "2", "256.0 ± 8.5 (↓49.0)", "86.50 ± 2.12 (↑5.50)†", "72.00 ± 1.41 (↑2.00)†"],
        ["synthetic", "auto", "✗", "2", "290.0 ± 0.0", "84.00 ± 0.00", "73.00 ± 1.41"],
        ["synthetic", "auto", "✓", "2", "242.0 ± 2.8 (↓48.0)", "90.50 ± 0.71 (↑6.50)", "75.00 ± 0.00 (↑2.00)†"],
    ]
    assert table.excluded == {"KILLED": 1}
    assert "finetuning gain, mean(finetune=true) - mean(finetune=false)" in table.footnote()
    numbers = table.numeric.set_index(["curation", "finetune"])
    assert numbers.loc[("none", "true"), "relsync_embedded_gain_p"] == pytest.approx(t_test_p([5.0, 6.0]))
    assert numbers.loc[("auto", "true"), "relsync_embedded_gain_p"] == pytest.approx(t_test_p([6.0, 7.0]))


def test_table1_reference_rows_first_and_models_named_by_what_differs() -> None:
    base = {"study": "window_radius", "status": "FINISHED", "dataset": "avsync15", "model_name": "tiny", "audio_layers": "a:11", "k": "all", "pretrain": "false"}
    frame = pd.DataFrame(
        [
            base | {"run_id": "a", "fps": "6", "window_radius": "0.5", "seed": "0", "relsync": 93.0, "relsync_ref_groundtruth": 100.0, "relsync_ref_static": 1.0},
            base | {"run_id": "b", "fps": "6", "window_radius": "0.5", "seed": "1", "relsync": 95.0, "relsync_ref_groundtruth": 100.0, "relsync_ref_static": 1.0},
            base | {"run_id": "c", "fps": "12", "window_radius": "1.5", "seed": "0", "relsync": 99.0, "relsync_ref_groundtruth": 100.0},
            base | {"run_id": "d", "fps": "6", "window_radius": "1.5", "seed": "0", "relsync": 94.0},
            base | {"run_id": "e", "fps": "6", "window_radius": "12", "seed": "0", "relsync": 50.0, "status": "FAILED"},
        ]
    )
    table = tables.build_table(frame, "table1")
    assert table is not None
    assert list(table.display.columns) == ["Dataset", "Model", "FPS", "n", "RelSync ↑"]
    assert rows(table) == [
        ["avsync15", "Groundtruth", "", "", "100.00"],
        ["avsync15", "Static", "", "", "1.00"],
        ["avsync15", "tiny (r=0.5)", "6", "2", "94.00 ± 1.41"],
        ["avsync15", "tiny (r=1.5)", "6", "1", "94.00"],
        ["avsync15", "tiny (r=1.5)", "12", "1", "99.00"],
    ]
    assert table.excluded == {"FAILED": 1}


def test_table1_from_the_store_spans_studies(job_runs: pd.DataFrame) -> None:
    table = tables.build_table(job_runs, "table1")
    assert table is not None
    shown = rows(table)
    synthetic = [row for row in shown if row[0] == "synthetic"]
    assert [row[1] for row in synthetic[:2]] == ["Groundtruth", "Static"]
    assert any("K=2, pretrain=true" in row[1] for row in synthetic) and any("curation=auto" in row[1] for row in synthetic)
    assert table.excluded == {"FAILED": 1, "RUNNING": 1, "KILLED": 1}


def test_latex_is_booktabs_and_balanced(job_runs: pd.DataFrame) -> None:
    table = tables.build_table(job_runs, "table3")
    assert table is not None
    latex = outputs.to_latex(table)
    assert latex.count(r"\toprule") == latex.count(r"\midrule") == latex.count(r"\bottomrule") == 1
    assert latex.count(r"\begin{") == latex.count(r"\end{") and latex.count("{") == latex.count("}")
    assert latex.index(r"\begin{tabular}") < latex.index(r"\toprule") < latex.index(r"\midrule") < latex.index(r"\bottomrule") < latex.index(r"\end{tabular}")
    assert r"319.7$^{\downarrow 72.1}$\textsuperscript{\ddag}" in latex and r"91.67 $\pm$ 1.61$^{\uparrow 0.67}$\textsuperscript{\dag}" in latex
    assert not any(symbol in latex for symbol in "↑↓±✓✗†‡–")
    assert latex.count("$") % 2 == 0
    body_rows = latex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert len(body_rows) == len(table.display) and all(row.count("&") == len(table.display.columns) - 1 for row in body_rows)
    assert "K-shot" in latex and "FD-pixel (synthetic) $\\downarrow$" in latex and "pretraining gain" in latex


def test_budget_smallest_matching_k_on_constructed_numbers() -> None:
    finetune_only = {1: 90.0, 5: 92.0, 10: 93.3, 90: 94.24}
    pretrain = {0: 80.0, 1: 93.31, 5: 94.0, 10: 94.3}
    # AlignSync (up, 2 decimals): K=1 pretrain (93.31) beats the baseline up to K=10 (93.30): 10x.
    assert budget.smallest_matching_k(finetune_only, pretrain, True, 2) == [
        (1, 90.0, 1, 93.31, 1.0),
        (5, 92.0, 1, 93.31, 5.0),
        (10, 93.3, 1, 93.31, 10.0),
        (90, 94.24, 10, 94.3, 9.0),
    ]
    fvd_only, fvd_pretrain = {1: 391.8, 10: 352.6, 90: 277.5}, {0: 338.4, 1: 319.7, 10: 292.1, 90: 258.1}
    assert [row[2:] for row in budget.smallest_matching_k(fvd_only, fvd_pretrain, False, 1)] == [
        (0, 338.4, math.inf),
        (0, 338.4, math.inf),
        (90, 258.1, 1.0),
    ]
    # Equal at the table's precision matches; nothing matching gives no K and no ratio.
    assert budget.smallest_matching_k({4: 50.004}, {2: 49.996}, True, 2)[0][2:] == (2, 49.996, 2.0)
    (row,) = budget.smallest_matching_k({4: 60.0}, {2: 50.0}, True, 2)
    assert row[2] is None and math.isnan(row[4])


def test_budget_curve_from_table3(job_runs: pd.DataFrame) -> None:
    table = tables.build_table(job_runs, "table3")
    assert table is not None
    result = budget.budget_curve(table)
    assert result is not None
    sync = result.numeric[(result.numeric["group"] == "synthetic") & (result.numeric["metric"] == "event_sync")].set_index("k_finetune_only")
    # EventSync finetune only: K=1 90, 2 91, 5 91, 10 93; with pretraining K=1 94.28 beats them all.
    assert sync["k_pretrain"].to_dict() == {1.0: 1.0, 2.0: 1.0, 5.0: 1.0, 10.0: 1.0}
    assert sync["ratio"].to_dict() == {1.0: 1.0, 2.0: 2.0, 5.0: 5.0, 10.0: 10.0}
    fd = result.numeric[(result.numeric["group"] == "synthetic") & (result.numeric["metric"] == "fd_pixel_synth")]
    assert set(fd["k_pretrain"]) == {0.0} and fd["ratio"].map(math.isinf).all()  # K=0 (305.0) beats every baseline
    assert "| synthetic | EventSync (synthetic) ↑ | 10" in result.to_markdown()
    assert "10.0x" in result.to_markdown() and "inf" in result.to_markdown()
    figure = budget.plot_budget(result)
    assert all(ax.get_xscale() == "log" for ax in figure.axes if ax.axison)


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
    table = tables.build_table(frame, "fig4b")
    assert table is not None
    assert rows(table) == [["avsync15", "6", "0.5", "1", "93.38"], ["avsync15", "6", "1.5", "1", "93.60"], ["avsync15", "12", "1.5", "1", "93.00"]]
    assert tables.build_table(frame.assign(status="FAILED"), "fig4b") is None
    assert tables.skip_message(frame.assign(status="FAILED"), "fig4b") == "fig4b: no finished job runs of study window_radius (3 excluded: failed/unfinished), skipped."


def test_main_prints_markdown_and_writes_every_format(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert make_tables.main(["--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "### Audio window radius (Fig. 4b)" in printed and "### K-shot finetuning" in printed and "### Models compared" in printed
    assert "| synthetic | 0.5              | 3   | 110.0 ± 10.0" in printed
    assert "94.28 ± 0.17 (↑4.28)" in printed and "1 run excluded: failed/unfinished (1 FAILED)." in printed
    assert "### Annotation budget" in printed
    for name in make_tables.NAMES:
        assert (tmp_path / f"{name}.md").read_text().startswith("### ")
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
        assert r"\toprule" in (tmp_path / f"{name}.tex").read_text()
    numbers = pd.read_csv(tmp_path / "table3.csv", dtype={"k": str, "pretrain": str})
    assert {"fvd_mean", "fvd_std", "fvd_n", "fvd_gain", "fvd_gain_p", "fvd_gain_ci_low", "event_sync_gain_pairs"} <= set(numbers.columns)
    row = numbers[(numbers["dataset"] == "avsync15") & (numbers["pretrain"] == "true")].iloc[0]
    assert row["fvd_gain"] == pytest.approx(-72.1) and row["alignsync_gain"] == pytest.approx(4.28)
    radius = pd.read_csv(tmp_path / "fig4b.csv")
    assert radius.loc[radius["window_radius"] == 0.5, ["event_sync_mean", "event_sync_std", "event_sync_n"]].values.tolist() == [[62.0, 2.0, 3]]


def test_main_only_and_format(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert make_tables.main(["--only", "table3", "--format", "md,tex", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "### K-shot finetuning" in printed and "### Audio window radius" not in printed
    assert sorted(path.name for path in tmp_path.iterdir()) == ["table3.md", "table3.tex"]
    with pytest.raises(SystemExit):
        make_tables.main(["--only", "table4"])
    assert "choose from table1, table2, table3, budget, fig4a, fig4b" in capsys.readouterr().err


def test_main_filters_and_skips(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert make_tables.main(["--dataset", "avsync15", "--format", "csv,md", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "fig4b: no finished job runs of study window_radius, skipped." in printed and "table2: no finished job runs of study curation, skipped." in printed
    assert "| avsync15  | 1   | ✓          | 1   | 319.7 (↓72.1)‡" in printed and "synthetic" not in printed
    assert sorted(path.name for path in tmp_path.iterdir()) == ["budget.csv", "budget.md", "table1.csv", "table1.md", "table3.csv", "table3.md"]

    assert make_tables.main(["--parent-run-id", store.parents["window_radius"], "--only", "fig4b", "--out", str(tmp_path)]) == 0
    assert "62.00 ± 2.00" in capsys.readouterr().out

    assert make_tables.main(["--study", "window_radius", "--only", "table3", "--out", str(tmp_path)]) == 0
    assert "table3: no finished job runs of study kshot, skipped." in capsys.readouterr().out

    assert make_tables.main(["--dataset", "nope", "--out", str(tmp_path / "none")]) == 0
    assert capsys.readouterr().out.startswith("No job runs (tag asva.role=job) matching {'dataset': 'nope'}")
    assert not (tmp_path / "none").exists()


def test_script_runs_from_the_repo_root_and_logs_progress(store: Store, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "analysis/make_tables.py", "--study", "encoder_layers", "--only", "fig4a", "--format", "png", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        env=os.environ | {"MLFLOW_TRACKING_URI": store.uri},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "a:3-7-11+b:3-7-11" in result.stdout
    assert (tmp_path / "fig4a.png").exists()
    # Not a terminal: progress and timing are log lines on stderr, not a bar.
    assert "[asva.analysis][INFO] - loaded 6 job runs" in result.stderr
    assert "[asva.progress][INFO] - building tables: 100%" in result.stderr and "\r" not in result.stderr


def test_main_metrics_selects_columns_and_names_an_unknown_one(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def columns(*metrics: str) -> list[str]:
        assert make_tables.main(["--only", "table2", "--metrics", ",".join(metrics), "--format", "csv", "--out", str(tmp_path)]) == 0
        header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| Dataset"))
        return [cell.strip() for cell in header.strip("|").split("|")][4:]

    assert columns("relsync_*") == ["RelSync (embedded) ↑", "RelSync (embedded), open-class ↑"]
    assert columns("fvd_embedded", "*_openclass") == ["FVD (embedded) ↓", "RelSync (embedded), open-class ↑"]
    assert make_tables.main(["--only", "table2,table3", "--metrics", "event_sync", "--format", "md", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "table2: no metric of it matches --metrics, skipped." in printed and "EventSync (synthetic) ↑" in printed
    assert make_tables.main(["--metrics", "relsink,fvd_embedded", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: --metrics: relsink matches no logged metric; logged: ") and "relsync_embedded" in error
