"""analysis/make_tables.py and analysis/runs.py on a store of real MLflow runs logged under the tracking
contract (tests/analysis_fixtures.py): which runs are job runs, the command line, its outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from analysis_fixtures import Store, t_test_p

from analysis import make_tables, runs
from analysis.render import TERMINAL_COLUMNS
from asva.tracking.store import ROLE_JOB

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_load_job_runs_keeps_only_job_runs_with_params_and_metrics(
    study_store: Store, study_job_runs: pd.DataFrame
) -> None:
    assert len(study_job_runs) == study_store.job_count
    assert set(study_job_runs["role"]) == {ROLE_JOB}
    assert study_job_runs["status"].value_counts().to_dict() == {
        "FINISHED": study_store.job_count - 3,
        "FAILED": 1,
        "RUNNING": 1,
        "KILLED": 1,
    }
    assert set(study_job_runs["experiment"]) == {
        "window_radius",
        "encoder_layers",
        "kshot",
        "kshot_avsync15",
        "curation",
    }
    assert {"dataset", "window_radius", "k", "pretrain", "seed", "event_sync", "fvd", "train_loss"} <= set(
        study_job_runs.columns
    )
    assert study_job_runs["window_radius"].map(type).eq(str).all()  # params stay strings
    assert "event_sync_ref_groundtruth" in runs.metric_columns(study_job_runs)
    assert "dataset" not in runs.metric_columns(study_job_runs) and "model_name" not in runs.metric_columns(
        study_job_runs
    )


def test_load_job_runs_filters_in_one_query(study_store: Store) -> None:
    assert set(runs.load_job_runs(dataset="avsync15")["k"]) == {"1"}
    assert len(runs.load_job_runs(parent_run_id=study_store.parents["encoder_layers"])) == 6
    assert set(runs.load_job_runs(experiment="kshot_avsync15")["dataset"]) == {"avsync15"}
    assert set(runs.load_job_runs(study="curation")["curation"]) == {"none", "auto"}
    assert runs.load_job_runs(experiment="no such experiment").empty
    assert runs.load_job_runs(uri="sqlite:////nonexistent/folder/mlflow.db").empty
    assert "asva.study" in runs.job_filter(study="kshot")


def test_main_prints_markdown_and_writes_every_format(
    study_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
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


def test_main_only_and_format(study_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert make_tables.main(["--only", "table3", "--format", "md,tex", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "### K-shot finetuning" in printed and "### Audio window radius" not in printed
    assert sorted(path.name for path in tmp_path.iterdir()) == ["table3.md", "table3.tex"]
    with pytest.raises(SystemExit):
        make_tables.main(["--only", "table4"])
    assert "choose from table1, table2, table3, budget, fig4a, fig4b" in capsys.readouterr().err


def test_main_filters_and_skips(study_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
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
        make_tables.main(
            ["--parent-run-id", study_store.parents["window_radius"], "--only", "fig4b", "--out", str(tmp_path)]
        )
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


def test_script_runs_from_the_repo_root_and_logs_progress(study_store: Store, tmp_path: Path) -> None:
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
        env=os.environ | {"MLFLOW_TRACKING_URI": study_store.uri},
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
    study_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
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
