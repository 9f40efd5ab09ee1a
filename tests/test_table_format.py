"""analysis/: how tables and figures are formatted, on frames built here (no store): the metric registry,
widths within the terminal, the embedded default's table, figure grids, the budget on constructed numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analysis_fixtures import EMBEDDED_JOB_PARAMS, panel_layout, rows

from analysis import budget, outputs, plots, tables
from analysis.metrics import MISSING, OTHER, by_family, metric_family, metric_info, metric_sort_key
from analysis.render import (
    HIGHER_THAN_ABOVE,
    LOWER_THAN_ABOVE,
    TERMINAL_COLUMNS,
    fit_to_width,
    markdown_table,
    printed_width,
)

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
    return [
        (
            EMBEDDED_JOB_PARAMS | {key: setting, "seed": str(seed), "config_hash": f"{study}-{setting}-{seed}"},
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
