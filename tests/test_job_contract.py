"""Runs that another program logs under the README's contract are jobs of the tables.

The contract: a job is a run tagged `asva.study`, nested under its sweep's parent run, with the
params dataset, fps, window_radius, audio_layers, k, pretrain, curation, finetune and seed. Here
the paper's Table 3 on AVSync15 is typed in as runs with plain `mlflow` calls, without the
`asva.role` tag the project's own jobs carry, beside a parent run without params, a pretraining
(a role of its own) and a run that lacks a param: the tables hold exactly the typed-in jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from analysis import make_tables, runs
from asva.tracking.store import ROLE_PRETRAIN, ROLE_TAG, STUDY_TAG

# The paper's Table 3, AVSync15: (K, pretrain) -> FVD, IA, IT, RelSync, AlignSync.
PAPER_TABLE3 = {
    ("0", "true"): (338.4, 39.06, 29.95, 93.08, 92.60),
    ("1", "false"): (391.8, 39.38, 30.29, 90.32, 90.00),
    ("1", "true"): (319.7, 39.56, 30.13, 94.40, 94.28),
    ("5", "false"): (349.6, 39.43, 30.27, 92.16, 91.84),
    ("5", "true"): (306.1, 39.63, 30.30, 94.54, 94.52),
    ("10", "false"): (352.6, 39.75, 30.35, 93.50, 93.32),
    ("10", "true"): (292.1, 39.66, 30.22, 94.62, 94.36),
    ("90", "false"): (277.5, 39.76, 30.38, 94.42, 94.24),
    ("90", "true"): (258.1, 39.74, 30.32, 94.66, 94.48),
}
# Its pretrain rows as printed, the superscripts as gains; one run per row: nothing to test (‡).
PAPER_GAIN_ROWS = [
    "| 1  | ✓        | 319.7 (↓72.1)‡ | 39.56 (↑0.18)‡ | 30.13 (↓0.16)‡ | 94.40 (↑4.08)‡ | 94.28 (↑4.28)‡ |",
    "| 5  | ✓        | 306.1 (↓43.5)‡ | 39.63 (↑0.20)‡ | 30.30 (↑0.03)‡ | 94.54 (↑2.38)‡ | 94.52 (↑2.68)‡ |",
    "| 10 | ✓        | 292.1 (↓60.5)‡ | 39.66 (↓0.09)‡ | 30.22 (↓0.13)‡ | 94.62 (↑1.12)‡ | 94.36 (↑1.04)‡ |",
    "| 90 | ✓        | 258.1 (↓19.4)‡ | 39.74 (↓0.02)‡ | 30.32 (↓0.06)‡ | 94.66 (↑0.24)‡ | 94.48 (↑0.24)‡ |",
]
PARAMS = {
    "dataset": "avsync15",
    "fps": "6",
    "window_radius": "0.5",
    "audio_layers": "a:11",
    "curation": "auto",
    "finetune": "true",
    "seed": "0",
}


@pytest.fixture
def paper_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """The paper's Table 3 as another program would log it (fluent mlflow API, explicit ids so
    that no active experiment outlives the test); yields the ids of the sweep's parent run and
    of the run without a seed."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.create_experiment("paper tables", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(
            experiment_id=experiment, run_name="Table 3 (AVSync15)", tags={STUDY_TAG: "kshot"}
        ) as sweep:
            for (k, pretrain), values in PAPER_TABLE3.items():
                with mlflow.start_run(experiment_id=experiment, run_name=f"K={k} pretrain={pretrain}", nested=True):
                    mlflow.set_tag(STUDY_TAG, "kshot")
                    mlflow.log_params(PARAMS | {"k": k, "pretrain": pretrain})
                    mlflow.log_metrics(dict(zip(("fvd", "ia", "it", "relsync", "alignsync"), values)))
            with mlflow.start_run(experiment_id=experiment, run_name="a pretraining", nested=True):
                mlflow.set_tags({STUDY_TAG: "kshot", ROLE_TAG: ROLE_PRETRAIN})
                mlflow.log_params(PARAMS | {"k": "all", "pretrain": "true"})
                mlflow.log_metric("fvd", 999.0)
            with mlflow.start_run(experiment_id=experiment, run_name="no seed", nested=True) as incomplete:
                mlflow.set_tag(STUDY_TAG, "kshot")
                mlflow.log_params(
                    {name: value for name, value in (PARAMS | {"k": "1", "pretrain": "true"}).items() if name != "seed"}
                )
                mlflow.log_metric("fvd", 999.0)
        yield sweep.info.run_id, incomplete.info.run_id
    finally:
        mlflow.set_tracking_uri(previous_uri)


def test_runs_logged_by_plain_mlflow_calls_are_tabulated(
    paper_store: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep, incomplete = paper_store
    with caplog.at_level(logging.WARNING, logger="asva.analysis"):
        jobs = runs.load_job_runs(parent_run_id=sweep)
    assert len(jobs) == len(PAPER_TABLE3) and jobs["role"].isna().all() and set(jobs["status"]) == {"FINISHED"}
    # The one run meant as a job but lacking a param is named; the parent (no params) is not.
    (warning,) = caplog.records
    assert "left out 1 run(s) tagged asva.study without asva.role that lack params seed" in warning.getMessage()
    assert incomplete in warning.getMessage() and sweep not in warning.getMessage()

    assert make_tables.main(["--only", "table3,budget", "--format", "csv,md", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "#### avsync15; n = 1 per row" in printed
    assert (
        "| 0  | ✓        | 338.4          | 39.06          | 29.95          | 93.08          | 92.60          |"
        in printed
    )
    assert all(row in printed for row in PAPER_GAIN_ROWS), printed
    # The paper's claim in numbers: AlignSync with K=1 and pretraining (94.28) beats K=90 without (94.24).
    budget = (tmp_path / "out" / "budget.csv").read_text().splitlines()
    assert "avsync15,alignsync,90.0,94.24,1.0,94.28,90.0" in budget
