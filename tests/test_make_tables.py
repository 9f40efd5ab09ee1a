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

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from scipy import stats as scipy_stats

from analysis import budget, make_tables, outputs, plots, runs, tables
from analysis.metrics import MISSING, OTHER, by_family, metric_family, metric_info, metric_sort_key
from analysis.render import (
    HIGHER_THAN_ABOVE,
    LOWER_THAN_ABOVE,
    TERMINAL_COLUMNS,
    fit_to_width,
    markdown_table,
    printed_width,
)
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
        base = {
            "dataset": "synthetic",
            "fps": "6",
            "window_radius": "0.5",
            "audio_layers": "a:11",
            "k": "all",
            "pretrain": "false",
        }
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


# A sweep on the embedded default with every metric its jobs log (asva/evaluation/evaluate.py):
# stand-ins of the paper's metrics, EventSync and FD-pixel, their open-class scores, null-audio
# controls and reference rows, plus bookkeeping. metric -> (value, change per unit of a setting's
# effect, per-seed noise); open-class clips score a little worse.
EMBEDDED_METRICS = {
    "fvd_embedded": (0.9, -0.2, 0.05),
    "ia_embedded": (63.2, 0.4, 0.2),
    "it_embedded": (51.0, 0.3, 0.2),
    "relsync_embedded": (80.0, 6.0, 1.0),
    "alignsync_embedded": (79.0, 6.0, 1.0),
    "fd_pixel_synth": (110.0, -25.0, 4.0),
    "event_sync": (60.0, 11.0, 1.5),
}
EMBEDDED_NULL_AUDIO = {"event_sync_null_audio": 11.0, "fd_pixel_synth_null_audio": 160.0}
# As measured on the embedded benchmark (docs/metrics.md).
EMBEDDED_REFERENCES = {
    "event_sync_ref_groundtruth": 100.0, "event_sync_ref_static": 0.0, "fd_pixel_synth_ref_static": 400.0, "fvd_embedded_ref_static": 1.47,
    "ia_embedded_ref_groundtruth": 63.9, "ia_embedded_ref_static": 65.5, "it_embedded_ref_groundtruth": 51.6, "it_embedded_ref_static": 59.5,
    "relsync_embedded_ref_groundtruth": 100.0, "relsync_embedded_ref_static": 25.3,
    "alignsync_embedded_ref_groundtruth": 99.2, "alignsync_embedded_ref_static": 25.3,
}  # fmt: skip
EMBEDDED_BOOKKEEPING = {
    "num_test_clips": 30.0,
    "num_test_clips_openclass": 8.0,
    "data_skipped_files": 0.0,
    "final_train_loss": 0.41,
}
# The paper's settings, each with its effect: Fig. 4b peaks at r = 1.5, Fig. 4a grows with layers.
EMBEDDED_SWEEPS = {
    "window_radius": ("window_radius", {"0.5": 0.0, "1.0": 0.5, "1.5": 1.0, "2.0": 0.6, "3.0": -1.2}),
    "encoder_layers": ("audio_layers", {"a:11": 0.0, "a:7-9-11": 0.5, "a:3-7-11": 0.7, "a:3-7-11+b:3-7-11": 1.2}),
}


def embedded_sweep_metrics(effect: float, seed: int, rng: np.random.Generator) -> dict[str, float]:
    metrics = {}
    for name, (value, change, noise) in EMBEDDED_METRICS.items():
        metrics[name] = value + change * effect + 0.5 * noise * (seed - 1) + rng.normal(0, noise)
        metrics[f"{name}_openclass"] = metrics[name] - 0.8 * change - rng.normal(0, noise)
    return (
        metrics
        | {name: value + rng.normal(0, 1.0) for name, value in EMBEDDED_NULL_AUDIO.items()}
        | EMBEDDED_REFERENCES
        | EMBEDDED_BOOKKEEPING
    )


def embedded_sweep(study: str, seeds: int = 3) -> list[tuple[dict[str, str], dict[str, float]]]:
    """(params, metrics) of each job of a study's sweep on the embedded default."""
    key, effects = EMBEDDED_SWEEPS[study]
    rng = np.random.default_rng(4)
    params = {
        "dataset": "synthetic",
        "fps": "6",
        "window_radius": "0.5",
        "audio_layers": "a:11",
        "k": "all",
        "pretrain": "false",
        "curation": "none",
        "finetune": "true",
    }
    return [
        (
            params | {key: setting, "seed": str(seed), "config_hash": f"{study}-{setting}-{seed}"},
            embedded_sweep_metrics(effect, seed, rng),
        )
        for setting, effect in effects.items()
        for seed in range(seeds)
    ]


def embedded_runs(study: str) -> pd.DataFrame:
    """The tidy frame analysis/runs.py would load for the study's sweep."""
    return pd.DataFrame(
        [
            {"run_id": params["config_hash"], "study": study, "status": "FINISHED", **params, **metrics}
            for params, metrics in embedded_sweep(study)
        ]
    )


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
    assert job_runs["status"].value_counts().to_dict() == {
        "FINISHED": store.job_count - 3,
        "FAILED": 1,
        "RUNNING": 1,
        "KILLED": 1,
    }
    assert set(job_runs["experiment"]) == {"window_radius", "encoder_layers", "kshot", "kshot_avsync15", "curation"}
    assert {"dataset", "window_radius", "k", "pretrain", "seed", "event_sync", "fvd", "train_loss"} <= set(
        job_runs.columns
    )
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
    fd, sync = metric_info("fd_pixel_synth"), metric_info("event_sync")
    # Full names in figures and the budget table, short ones in table columns (* = not the paper's).
    assert fd.header == "FD-pixel (synthetic) ↓" and sync.header == "EventSync (synthetic) ↑"
    assert fd.column == "FD-pixel* ↓" and sync.column == "EventSync* ↑"
    assert (
        metric_info("fvd").header == metric_info("fvd").column == "FVD ↓"
        and metric_info("alignsync").column == "AlignSync ↑"
    )
    assert fd.cell(319.71, 3.14, 3, gain=-72.1) == "319.7 ± 3.1 (↓72.1)"
    assert sync.cell(94.281, 0.123, 3, gain=4.28, mark="†") == "94.28 ± 0.12 (↑4.28)†"
    assert sync.cell(71.0, 1.0, 3, mark=HIGHER_THAN_ABOVE) == "71.00 ± 1.00▲"
    assert sync.cell(94.28, math.nan, 1) == "94.28"
    assert sync.cell(math.nan, math.nan, 0) == MISSING
    assert metric_info("fd_flow_synth").decimals == 1 and metric_info("clip_score").decimals == 2
    assert metric_info("event_sync_null_audio").header == "EventSync (synthetic), null audio"
    assert metric_info("event_sync_null_audio").column == "EventSync*, null audio"  # a control: no direction
    assert metric_info("fvd_embedded").header == "FVD (embedded) ↓" and metric_info("fvd_embedded").column == "FVD* ↓"
    assert metric_info("relsync_embedded_openclass").header == "RelSync (embedded), open-class ↑"
    assert metric_info("relsync_embedded_openclass").column == "RelSync*, open-class ↑"
    assert metric_info("alignsync_openclass").decimals == 2
    # The stand-in FVD is on a scale of 1 (docs/metrics.md), the paper's of 100.
    assert (
        metric_info("fvd_embedded").cell(0.8421, 0.0312, 3) == "0.842 ± 0.031"
        and metric_info("fvd_embedded_openclass").decimals == 3
    )
    names = [
        "zeta",
        "event_sync",
        "event_sync_null_audio",
        "fd_pixel_synth",
        "alpha",
        "relsync",
        "fvd",
        "alignsync",
        "it",
        "ia",
    ]
    names += ["relsync_embedded", "relsync_openclass", "relsync_embedded_openclass", "fvd_embedded"]
    assert sorted(names, key=metric_sort_key) == [
        "fvd", "fvd_embedded", "ia", "it", "relsync", "relsync_openclass", "relsync_embedded", "relsync_embedded_openclass",
        "alignsync", "fd_pixel_synth", "event_sync", "event_sync_null_audio", "alpha", "zeta",
    ]  # fmt: skip
    # Printed tables: the paper's columns, then their open-class scores and null-audio controls,
    # then everything else (variants included).
    assert by_family(names) == {
        "": ["fvd", "fvd_embedded", "ia", "it", "relsync", "relsync_embedded", "alignsync", "event_sync"],
        "_openclass": ["relsync_openclass", "relsync_embedded_openclass"],
        "_null_audio": ["event_sync_null_audio"],
        "other": ["fd_pixel_synth", "alpha", "zeta"],
    }
    assert metric_family("fd_pixel_synth_null_audio") == metric_family("clip_score_openclass") == OTHER


def test_fig4b_window_radius_table(job_runs: pd.DataFrame) -> None:
    table = tables.build_table(job_runs, "fig4b")
    assert table is not None
    # The LaTeX's single table: every metric, reference rows as rows.
    assert list(table.display.columns) == [
        "Dataset",
        "Radius (1/FPS)",
        "n",
        "FD-pixel* ↓",
        "EventSync* ↑",
        "EventSync*, null audio",
    ]
    assert rows(table) == [
        ["synthetic", "Groundtruth", "", "–", "95.00", "–"],
        ["synthetic", "Static", "", "400.0", "5.00", "–"],
        ["synthetic", "0.5", "3", "110.0 ± 10.0", "62.00 ± 2.00", "10.00 ± 0.00"],
        ["synthetic", "1.5", "3", "91.0 ± 1.7", "71.00 ± 1.00▲", "12.00 ± 0.00▲"],  # the FAILED seed is not averaged
        ["synthetic", "3.0", "2", "155.0 ± 7.1▲", "52.00 ± 2.83", "11.00 ± 0.00▼"],
        ["synthetic", "12.0", "1", "200.0", "30.50", "9.00"],
    ]
    assert table.excluded == {"FAILED": 1}
    assert table.footnote().startswith(
        "mean ± std over seeds (n runs); 1 run excluded: failed/unfinished (1 FAILED). ▲/▼: higher/lower than the row above"
    )
    assert "*: not the paper's metric but one of this project's stand-ins" in table.footnote()
    assert "train_loss" not in table.numeric.columns and "num_test_clips_mean" not in table.numeric.columns
    # Each row against the row above, paired over the seeds both have (1.5 vs 0.5: seeds 0-2;
    # 3.0 vs 1.5: seeds 0-1; 12.0 vs 3.0: seed 0 alone, untested).
    numbers = table.numeric.set_index("window_radius")
    assert (
        numbers.loc["1.5", "event_sync_vs_above"] == pytest.approx(9.0)
        and numbers.loc["1.5", "event_sync_vs_above_pairs"] == 3
    )
    assert numbers.loc["1.5", "event_sync_vs_above_p"] == pytest.approx(t_test_p([10.0, 9.0, 8.0]))  # 0.004
    assert (
        numbers.loc["1.5", "fd_pixel_synth_vs_above_p"] == pytest.approx(t_test_p([-10.0, -20.0, -27.0]))
        and t_test_p([-10.0, -20.0, -27.0]) > 0.05
    )
    assert (
        numbers.loc["3.0", "event_sync_vs_above_p"] == pytest.approx(t_test_p([-20.0, -17.0]))
        and t_test_p([-20.0, -17.0]) > 0.05
    )
    assert (
        numbers.loc["3.0", "fd_pixel_synth_vs_above_p"] == pytest.approx(t_test_p([60.0, 70.0]))
        and t_test_p([60.0, 70.0]) < 0.05
    )
    assert numbers.loc["12.0", "event_sync_vs_above_pairs"] == 1 and math.isnan(
        numbers.loc["12.0", "event_sync_vs_above_p"]
    )
    assert numbers.loc[["0.5", ""], "event_sync_vs_above"].isna().all()  # the first row, the reference rows

    # Printed: the main table (here EventSync alone), then the null-audio control and the other
    # metrics each in a table of their own, the dataset in the headings, reference rows where they
    # have a value.
    assert [section.heading for section in table.sections] == [
        "synthetic",
        "synthetic: null-audio control (the same models sampled without audio)",
        "synthetic: other metrics",
    ]
    main, null_audio, other = (section.frame.values.tolist() for section in table.sections)
    assert list(table.sections[0].frame.columns) == ["Radius (1/FPS)", "n", "EventSync* ↑"]
    assert main == [
        ["Groundtruth", "", "95.00"],
        ["Static", "", "5.00"],
        ["0.5", "3", "62.00 ± 2.00"],
        ["1.5", "3", "71.00 ± 1.00▲"],
        ["3.0", "2", "52.00 ± 2.83"],
        ["12.0", "1", "30.50"],
    ]
    assert list(table.sections[1].frame.columns) == ["Radius (1/FPS)", "n", "EventSync*"] and [
        row[0] for row in null_audio
    ] == ["0.5", "1.5", "3.0", "12.0"]
    assert list(table.sections[2].frame.columns) == ["Radius (1/FPS)", "n", "FD-pixel* ↓"] and other[0] == [
        "Static",
        "",
        "400.0",
    ]
    markdown = table.to_markdown()
    assert "| 12.0           | 1 | 30.50         |" in markdown and "#### synthetic: other metrics" in markdown
    assert " ".join(markdown.split()).endswith(table.footnote())  # the footnote last, wrapped to the terminal too
    assert max(map(len, markdown.splitlines())) <= TERMINAL_COLUMNS


def test_fig4a_encoder_layers_table(job_runs: pd.DataFrame) -> None:
    table = tables.build_table(job_runs, "fig4a")
    assert table is not None
    # The paper's order: each row adds one thing to the row above (layers, their spread, BEATs).
    assert [row[1] for row in rows(table)] == [
        "Groundtruth",
        "Static",
        "a:11",
        "a:7-9-11",
        "a:3-7-11",
        "a:3-7-11+b:3-7-11",
    ]
    assert rows(table)[2][2:4] == ["2", "61.00 ± 1.41"]
    # One seed in common at most: nothing tested, nothing marked.
    assert rows(table)[3:] == [
        ["synthetic", "a:7-9-11", "1", "66.00", "10.00"],
        ["synthetic", "a:3-7-11", "2", "70.00 ± 0.00", "10.00 ± 0.00"],
        ["synthetic", "a:3-7-11+b:3-7-11", "1", "80.00", "10.00"],
    ]
    assert table.numeric["event_sync_vs_above_pairs"].dropna().tolist() == [1.0, 1.0, 1.0]
    assert table.footnote().startswith("mean ± std over seeds (n runs); 0 runs excluded: failed/unfinished. ▲/▼")


@pytest.mark.parametrize("study", EMBEDDED_SWEEPS)
def test_embedded_default_tables_have_the_papers_columns_within_120_columns(study: str) -> None:
    """What a sweep on the embedded default logs (16 metrics, their reference rows) prints as the
    paper's table, six columns wide, and the open-class, null-audio and other metrics apart."""
    name = {"window_radius": "fig4b", "encoder_layers": "fig4a"}[study]
    table = tables.build_table(embedded_runs(study), name)
    assert table is not None
    key = table.spec.headers[0]
    # 3 seeds in every row: n is said once, in the headings.
    assert [(section.heading, list(section.frame.columns)) for section in table.sections] == [
        ("synthetic; n = 3 per row", [key, "FVD* ↓", "IA* ↑", "IT* ↑", "RelSync* ↑", "AlignSync* ↑", "EventSync* ↑"]),
        (
            "synthetic: open-class clips (classes only the pretraining pool holds); n = 3 per row",
            [key, "FVD* ↓", "IA* ↑", "IT* ↑", "RelSync* ↑", "AlignSync* ↑", "EventSync* ↑"],
        ),
        ("synthetic: null-audio control (the same models sampled without audio); n = 3 per row", [key, "EventSync*"]),
        (
            "synthetic: other metrics; n = 3 per row",
            [key, "FD-pixel* ↓", "FD-pixel*, open-class ↓", "FD-pixel*, null audio"],
        ),
    ]
    settings = list(EMBEDDED_SWEEPS[study][1])
    main = table.sections[0].frame
    # Reference rows are rows (Groundtruth has no FVD: 0 by definition), then one row per setting.
    assert main.iloc[:2].values.tolist() == [
        ["Groundtruth", "–", "63.90", "51.60", "100.00", "99.20", "100.00"],
        ["Static", "1.470", "65.50", "59.50", "25.30", "25.30", "0.00"],
    ]
    assert main[key].tolist()[2:] == settings
    assert all(" ± " in cell for cell in main.iloc[2:, 1:].to_numpy().ravel())  # 3 seeds: mean ± std
    markdown = table.to_markdown()
    assert "(continued)" not in markdown and "_ref_" not in markdown
    assert max(map(len, markdown.splitlines())) <= TERMINAL_COLUMNS
    # Significant steps are marked: in this sweep the largest radius loses synchronization.
    if study == "window_radius":
        assert main.iloc[-1]["RelSync* ↑"].endswith(LOWER_THAN_ABOVE) and main.iloc[-1]["FVD* ↓"].endswith(
            HIGHER_THAN_ABOVE
        )
    # The CSV and the LaTeX keep every metric in one table.
    logged = {
        name
        for _, metrics in embedded_sweep(study)
        for name in metrics
        if "_ref_" not in name and name not in EMBEDDED_BOOKKEEPING
    }
    assert {f"{metric}_mean" for metric in logged} <= set(table.numeric.columns)
    assert len(table.display.columns) == 3 + len(logged)


def test_a_table_wider_than_the_terminal_is_split_keeping_its_key_columns() -> None:
    frame = pd.DataFrame(
        {"K": ["1", "10"], "n": ["3", "3"]}
        | {f"metric {index}": ["94.28 ± 0.17 (↑4.28)†", "1.0"] for index in range(6)}
    )
    parts = fit_to_width(frame, ["K", "n"])
    assert [list(part.columns) for part in parts] == [
        ["K", "n", "metric 0", "metric 1", "metric 2", "metric 3"],
        ["K", "n", "metric 4", "metric 5"],
    ]
    assert all(printed_width(part) <= TERMINAL_COLUMNS for part in parts)
    assert printed_width(frame) > TERMINAL_COLUMNS
    assert markdown_table(frame.iloc[:, :3]).splitlines() == [
        "| K  | n | metric 0              |",
        "|:---|:--|:----------------------|",
        "| 1  | 3 | 94.28 ± 0.17 (↑4.28)† |",
        "| 10 | 3 | 1.0                   |",
    ]


def panel_layout(figure) -> list[tuple[str, float]]:
    """(title, width in px of the PNG at 120 dpi) of each panel drawn, in reading order."""
    figure.draw_without_rendering()  # applies the constrained layout
    panels = [ax for ax in figure.axes if ax.axison]
    return [(ax.get_title(), ax.get_position().width * figure.get_figwidth() * 120) for ax in panels]


def test_figures_are_grids_of_legible_panels_the_papers_metrics_first(tmp_path: Path) -> None:
    table = tables.build_table(embedded_runs("window_radius"), "fig4b")
    assert table is not None
    figure = plots.plot_table(table)
    layout = panel_layout(figure)
    # 14 panels (the null-audio controls are drawn on their metric's panel), 3 to a row.
    assert [title for title, _ in layout][:6] == [
        "FVD (embedded) ↓",
        "IA (embedded) ↑",
        "IT (embedded) ↑",
        "RelSync (embedded) ↑",
        "AlignSync (embedded) ↑",
        "EventSync (synthetic) ↑",
    ]
    assert len(layout) == 14 and min(width for _, width in layout) >= 350
    columns = {round(ax.get_position().x0, 3) for ax in figure.axes if ax.axison}
    assert len(columns) == 3
    assert figure.get_suptitle() == "Audio window radius (Fig. 4b): synthetic"
    # Reference lines are named where they end, and in the one legend below the panels.
    relsync = next(ax for ax in figure.axes if ax.get_title() == "RelSync (embedded) ↑")
    assert {text.get_text() for text in relsync.texts} == {"Groundtruth", "Static"}
    sync = next(ax for ax in figure.axes if ax.get_title() == "EventSync (synthetic) ↑")
    assert "null audio (mean)" in sync.get_legend_handles_labels()[1]
    (legend,) = figure.legends
    assert {text.get_text() for text in legend.get_texts()} == {"Groundtruth", "Static", "null audio (mean)"}
    assert not [ax for ax in figure.axes if ax.get_legend() is not None]
    outputs.write_outputs(table, figure, tmp_path, ("png",))
    from PIL import Image

    with Image.open(tmp_path / "fig4b.png") as image:
        assert image.width <= 3 * 560 and image.height < 2400


def test_budget_figure_in_rows_of_three(job_runs: pd.DataFrame) -> None:
    table = tables.build_table(job_runs, "table3")
    assert table is not None
    result = budget.budget_curve(table)
    assert result is not None
    layout = panel_layout(budget.plot_budget(result))
    # AVSync15's three paper metrics in a row, then the synthetic benchmark's row, EventSync first.
    assert [title for title, _ in layout] == [
        "avsync15: FVD ↓",
        "avsync15: RelSync ↑",
        "avsync15: AlignSync ↑",
        "synthetic: EventSync (synthetic) ↑",
        "synthetic: FD-pixel (synthetic) ↓",
    ]
    assert min(width for _, width in layout) >= 350


def test_table3_layout_gains_and_paired_tests(job_runs: pd.DataFrame) -> None:
    table = tables.build_table(job_runs, "table3")
    assert table is not None
    assert list(table.display.columns) == [
        "Dataset",
        "K",
        "Pretrain",
        "n",
        "FVD ↓",
        "RelSync ↑",
        "AlignSync ↑",
        "FD-pixel* ↓",
        "EventSync* ↑",
    ]
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
    assert table.footnote().startswith(
        "mean ± std over seeds (n runs); 1 run excluded: failed/unfinished (1 RUNNING). (↑/↓x): pretraining gain"
    )
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
    assert math.isnan(numbers.loc[("synthetic", "1", "false"), "event_sync_gain"]) and math.isnan(
        numbers.loc[("synthetic", "0", "true"), "event_sync_gain"]
    )
    assert not any("vs_above" in column for column in table.numeric.columns)  # K-shot rows are compared by paradigm
    # Printed per dataset, each with the columns it has: AVSync15 the paper's, the synthetic
    # benchmark EventSync, then FD-pixel among the other metrics.
    assert [(section.heading, list(section.frame.columns)) for section in table.sections] == [
        ("avsync15; n = 1 per row", ["K", "Pretrain", "FVD ↓", "RelSync ↑", "AlignSync ↑"]),
        ("synthetic", ["K", "Pretrain", "n", "EventSync* ↑"]),
        ("synthetic: other metrics", ["K", "Pretrain", "n", "FD-pixel* ↓"]),
    ]


def test_table2_curation_with_finetuning_gains_and_openclass_apart(job_runs: pd.DataFrame) -> None:
    table = tables.build_table(job_runs, "table2")
    assert table is not None
    assert list(table.display.columns) == [
        "Dataset",
        "Curation",
        "Finetune",
        "n",
        "FVD* ↓",
        "RelSync* ↑",
        "RelSync*, open-class ↑",
    ]
    # Finetuning gains, per curation: relsync none 5, 6 (p = 0.058: †); auto 6, 7 (p = 0.049); FVD none -0.050, -0.048.
    assert rows(table) == [
        ["synthetic", "none", "✗", "2", "1.305 ± 0.007", "81.00 ± 1.41", "70.00 ± 0.00"],
        ["synthetic", "none", "✓", "2", "1.256 ± 0.008 (↓0.049)", "86.50 ± 2.12 (↑5.50)†", "72.00 ± 1.41 (↑2.00)†"],
        ["synthetic", "auto", "✗", "2", "1.290 ± 0.000", "84.00 ± 0.00", "73.00 ± 1.41"],
        ["synthetic", "auto", "✓", "2", "1.242 ± 0.003 (↓0.048)", "90.50 ± 0.71 (↑6.50)", "75.00 ± 0.00 (↑2.00)†"],
    ]
    assert table.excluded == {"KILLED": 1}
    assert "finetuning gain, mean(finetune=true) - mean(finetune=false)" in table.footnote()
    numbers = table.numeric.set_index(["curation", "finetune"])
    assert numbers.loc[("none", "true"), "relsync_embedded_gain_p"] == pytest.approx(t_test_p([5.0, 6.0]))
    assert numbers.loc[("auto", "true"), "relsync_embedded_gain_p"] == pytest.approx(t_test_p([6.0, 7.0]))
    # Printed: the open-class score in a table of its own, under its metric's short name.
    assert [(section.heading, list(section.frame.columns)[2:]) for section in table.sections] == [
        ("synthetic; n = 2 per row", ["FVD* ↓", "RelSync* ↑"]),
        ("synthetic: open-class clips (classes only the pretraining pool holds); n = 2 per row", ["RelSync* ↑"]),
    ]
    assert table.sections[1].frame.values.tolist()[1] == ["none", "✓", "72.00 ± 1.41 (↑2.00)†"]


def test_table1_reference_rows_first_and_models_named_by_what_differs() -> None:
    base = {
        "study": "window_radius",
        "status": "FINISHED",
        "dataset": "avsync15",
        "model_name": "tiny",
        "audio_layers": "a:11",
        "k": "all",
        "pretrain": "false",
    }
    frame = pd.DataFrame(
        [
            base
            | {
                "run_id": "a",
                "fps": "6",
                "window_radius": "0.5",
                "seed": "0",
                "relsync": 93.0,
                "relsync_ref_groundtruth": 100.0,
                "relsync_ref_static": 1.0,
            },
            base
            | {
                "run_id": "b",
                "fps": "6",
                "window_radius": "0.5",
                "seed": "1",
                "relsync": 95.0,
                "relsync_ref_groundtruth": 100.0,
                "relsync_ref_static": 1.0,
            },
            base
            | {
                "run_id": "c",
                "fps": "12",
                "window_radius": "1.5",
                "seed": "0",
                "relsync": 99.0,
                "relsync_ref_groundtruth": 100.0,
            },
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
    assert any("K=2, pretrain ✓" in row[1] for row in synthetic) and any("curation=auto" in row[1] for row in synthetic)
    assert table.excluded == {"FAILED": 1, "RUNNING": 1, "KILLED": 1}


def test_latex_is_booktabs_and_balanced(job_runs: pd.DataFrame) -> None:
    table = tables.build_table(job_runs, "table3")
    assert table is not None
    latex = outputs.to_latex(table)
    assert latex.count(r"\toprule") == latex.count(r"\midrule") == latex.count(r"\bottomrule") == 1
    assert latex.count(r"\begin{") == latex.count(r"\end{") and latex.count("{") == latex.count("}")
    assert (
        latex.index(r"\begin{tabular}")
        < latex.index(r"\toprule")
        < latex.index(r"\midrule")
        < latex.index(r"\bottomrule")
        < latex.index(r"\end{tabular}")
    )
    assert (
        r"319.7$^{\downarrow 72.1}$\textsuperscript{\ddag}" in latex
        and r"91.67 $\pm$ 1.61$^{\uparrow 0.67}$\textsuperscript{\dag}" in latex
    )
    assert not any(symbol in latex for symbol in "↑↓±✓✗†‡–")
    assert latex.count("$") % 2 == 0
    body_rows = latex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert len(body_rows) == len(table.display) and all(
        row.count("&") == len(table.display.columns) - 1 for row in body_rows
    )
    assert "K-shot" in latex and "FD-pixel* $\\downarrow$" in latex and "pretraining gain" in latex


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
    sync = result.numeric[
        (result.numeric["group"] == "synthetic") & (result.numeric["metric"] == "event_sync")
    ].set_index("k_finetune_only")
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
    assert rows(table) == [
        ["avsync15", "6", "0.5", "1", "93.38"],
        ["avsync15", "6", "1.5", "1", "93.60"],
        ["avsync15", "12", "1.5", "1", "93.00"],
    ]
    assert tables.build_table(frame.assign(status="FAILED"), "fig4b") is None
    assert (
        tables.skip_message(frame.assign(status="FAILED"), "fig4b")
        == "fig4b: no finished job runs of study window_radius (3 excluded: failed/unfinished), skipped."
    )


def test_main_prints_markdown_and_writes_every_format(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert make_tables.main(["--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert (
        "### Audio window radius (Fig. 4b)" in printed
        and "### K-shot finetuning" in printed
        and "### Models compared" in printed
    )
    assert "| 0.5            | 3 | 62.00 ± 2.00  |" in printed and "| 0.5            | 3 | 110.0 ± 10.0 |" in printed
    assert "94.28 ± 0.17 (↑4.28)" in printed and "1 run excluded: failed/unfinished (1 FAILED)." in printed
    assert "### Annotation budget" in printed
    # Every table and footnote within the terminal (the "wrote ..." lines name a temporary folder).
    assert max(len(line) for line in printed.splitlines() if not line.startswith("wrote ")) <= TERMINAL_COLUMNS
    for name in make_tables.NAMES:
        assert (tmp_path / f"{name}.md").read_text().startswith("### ")
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
        assert r"\toprule" in (tmp_path / f"{name}.tex").read_text()
    numbers = pd.read_csv(tmp_path / "table3.csv", dtype={"k": str, "pretrain": str})
    assert {
        "fvd_mean",
        "fvd_std",
        "fvd_n",
        "fvd_gain",
        "fvd_gain_p",
        "fvd_gain_ci_low",
        "event_sync_gain_pairs",
    } <= set(numbers.columns)
    row = numbers[(numbers["dataset"] == "avsync15") & (numbers["pretrain"] == "true")].iloc[0]
    assert row["fvd_gain"] == pytest.approx(-72.1) and row["alignsync_gain"] == pytest.approx(4.28)
    radius = pd.read_csv(tmp_path / "fig4b.csv")
    assert radius.loc[
        radius["window_radius"] == 0.5, ["event_sync_mean", "event_sync_std", "event_sync_n"]
    ].values.tolist() == [[62.0, 2.0, 3]]
    assert radius.loc[radius["window_radius"] == 1.5, "event_sync_vs_above_p"].item() == pytest.approx(
        t_test_p([10.0, 9.0, 8.0])
    )
    # The CSV and the LaTeX keep every metric in one table, the null-audio control included.
    assert {"fd_pixel_synth_mean", "event_sync_null_audio_mean", "event_sync_null_audio_vs_above_p"} <= set(
        radius.columns
    )
    latex = (tmp_path / "fig4b.tex").read_text()
    assert "FD-pixel* $\\downarrow$ & EventSync* $\\uparrow$ & EventSync*, null audio" in latex
    assert (
        r"71.00 $\pm$ 1.00\textsuperscript{$\blacktriangle$}" in latex
        and r"11.00 $\pm$ 0.00\textsuperscript{$\blacktriangledown$}" in latex
    )


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
    assert (
        "fig4b: no finished job runs of study window_radius, skipped." in printed
        and "table2: no finished job runs of study curation, skipped." in printed
    )
    assert (
        "| 1 | ✓        | 319.7 (↓72.1)‡ | 94.40 (↑4.08)‡ | 94.28 (↑4.28)‡ |" in printed and "synthetic" not in printed
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "budget.csv",
        "budget.md",
        "table1.csv",
        "table1.md",
        "table3.csv",
        "table3.md",
    ]

    assert (
        make_tables.main(["--parent-run-id", store.parents["window_radius"], "--only", "fig4b", "--out", str(tmp_path)])
        == 0
    )
    assert "62.00 ± 2.00" in capsys.readouterr().out

    assert make_tables.main(["--study", "window_radius", "--only", "table3", "--out", str(tmp_path)]) == 0
    assert "table3: no finished job runs of study kshot, skipped." in capsys.readouterr().out

    assert make_tables.main(["--dataset", "nope", "--out", str(tmp_path / "none")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("No job runs matching {'dataset': 'nope'} in sqlite:")
    assert (
        "A job run is tagged asva.study, and either asva.role=job or no asva.role and the params dataset, fps,"
        in printed
    )
    assert not (tmp_path / "none").exists()


def test_script_runs_from_the_repo_root_and_logs_progress(store: Store, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "analysis/make_tables.py",
            "--study",
            "encoder_layers",
            "--only",
            "fig4a",
            "--format",
            "png",
            "--out",
            str(tmp_path),
        ],
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


def test_main_metrics_selects_columns_and_names_an_unknown_one(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def printed_tables(*metrics: str) -> dict[str, list[str]]:
        """Heading -> metric columns of each printed table."""
        assert (
            make_tables.main(
                ["--only", "table2", "--metrics", ",".join(metrics), "--format", "csv", "--out", str(tmp_path)]
            )
            == 0
        )
        lines = capsys.readouterr().out.splitlines()
        headings = [(index, line.removeprefix("#### ")) for index, line in enumerate(lines) if line.startswith("#### ")]
        return {
            heading: [cell.strip() for cell in lines[index + 2].strip("|").split("|")][2:]
            for index, heading in headings
        }

    open_class = "synthetic: open-class clips (classes only the pretraining pool holds); n = 2 per row"
    assert printed_tables("relsync_*") == {"synthetic; n = 2 per row": ["RelSync* ↑"], open_class: ["RelSync* ↑"]}
    assert printed_tables("fvd_embedded", "*_openclass") == {
        "synthetic; n = 2 per row": ["FVD* ↓"],
        open_class: ["RelSync* ↑"],
    }
    assert printed_tables("*_openclass") == {open_class: ["RelSync* ↑"]}
    assert (
        make_tables.main(
            ["--only", "table2,table3", "--metrics", "event_sync", "--format", "md", "--out", str(tmp_path)]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "table2: no metric of it matches --metrics, skipped." in printed and "EventSync* ↑" in printed
    assert make_tables.main(["--metrics", "relsink,fvd_embedded", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert (
        error.startswith("error: --metrics: relsink matches no logged metric; logged: ") and "relsync_embedded" in error
    )
