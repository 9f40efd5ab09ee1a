"""analysis/tables.py and analysis/budget.py: the paper's tables and the budget curve from a store of real
MLflow runs (tests/analysis_fixtures.py), with their means, paired tests, marks and footnotes."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from analysis_fixtures import panel_layout, rows, t_test_p

from analysis import budget, outputs, tables
from analysis.render import TERMINAL_COLUMNS


def test_fig4b_window_radius_table(study_job_runs: pd.DataFrame) -> None:
    table = tables.build_table(study_job_runs, "fig4b")
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


def test_fig4a_encoder_layers_table(study_job_runs: pd.DataFrame) -> None:
    table = tables.build_table(study_job_runs, "fig4a")
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


def test_table3_layout_gains_and_paired_tests(study_job_runs: pd.DataFrame) -> None:
    table = tables.build_table(study_job_runs, "table3")
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


def test_table2_curation_with_finetuning_gains_and_openclass_apart(study_job_runs: pd.DataFrame) -> None:
    table = tables.build_table(study_job_runs, "table2")
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


def test_table1_from_the_store_spans_studies(study_job_runs: pd.DataFrame) -> None:
    table = tables.build_table(study_job_runs, "table1")
    assert table is not None
    shown = rows(table)
    synthetic = [row for row in shown if row[0] == "synthetic"]
    assert [row[1] for row in synthetic[:2]] == ["Groundtruth", "Static"]
    assert any("K=2, pretrain ✓" in row[1] for row in synthetic) and any("curation=auto" in row[1] for row in synthetic)
    assert table.excluded == {"FAILED": 1, "RUNNING": 1, "KILLED": 1}


def test_latex_is_booktabs_and_balanced(study_job_runs: pd.DataFrame) -> None:
    table = tables.build_table(study_job_runs, "table3")
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


def test_budget_curve_from_table3(study_job_runs: pd.DataFrame) -> None:
    table = tables.build_table(study_job_runs, "table3")
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


def test_budget_figure_in_rows_of_three(study_job_runs: pd.DataFrame) -> None:
    table = tables.build_table(study_job_runs, "table3")
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
