"""Seaborn figures of the tables: one point per seed and the mean with its 95% interval, the
per-seed spread that a mean ± std cell hides.

Panels come in rows of at most three, each 528 x 408 px in the PNG (120 dpi), so that a figure
reads at 100%; every dataset (and FPS) starts a row of its own, and the paper's columns come first
(then open-class scores, then other metrics, as in the printed tables). The Groundtruth and Static
reference values are labelled horizontal lines, and a metric's null-audio control is drawn on its
panel rather than in a panel of its own, so that the gap that audio makes is visible. One legend
below the panels serves them all. Seaborn bootstraps the 95% intervals; its seed is fixed so that
a figure rebuilds identically.
"""

from __future__ import annotations

import math

import pandas as pd
import seaborn as sns
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis.metrics import REFERENCES, by_family, metric_info
from analysis.tables import Table, iter_groups, sorted_values
from asva.tracking.store import NULL_AUDIO_SUFFIX

PANELS_PER_ROW = 3
PANEL_INCHES = (4.4, 3.4)  # width, height: 528 x 408 px at the 120 dpi of outputs.write_outputs
LEGEND_INCHES = 0.6
LEGEND_TITLE = "small points: one run per seed; large markers: mean with its 95% interval"
REFERENCE_STYLE = {
    "Groundtruth": {"color": "tab:green", "linestyle": "--"},
    "Static": {"color": "0.4", "linestyle": ":"},
}
# The null-audio control: its mean alone, in a colour and marker of its own.
NULL_AUDIO_MEAN = {"errorbar": None, "marker": "X", "color": "tab:red", "label": "null audio (mean)"}
PARADIGMS = {"false": "finetune only", "true": "pretrain + finetune"}
INTERVAL = ("ci", 95)
SEED = 0
# Per-seed points drawn over the means' error bars, which would hide them; thin bars.
SEED_POINTS = {"size": 4, "alpha": 0.8, "zorder": 3}
MEAN_POINTS = {"errorbar": INTERVAL, "seed": SEED, "capsize": 0.15, "err_kws": {"linewidth": 1.5}, "markersize": 6}


def panel_grid(
    title: str, panel_counts: list[int], panel_height: float = PANEL_INCHES[1], label_width: float = 0.0
) -> tuple[Figure, list[list[Axes]]]:
    """A figure (not attached to pyplot, so nothing piles up in a loop) with each group's panels in
    rows of at most PANELS_PER_ROW, every group starting a row, unused cells blank; returns each
    group's axes in reading order. `label_width` (inches) widens it for long y tick labels."""
    rows = [math.ceil(count / PANELS_PER_ROW) for count in panel_counts]
    columns = min(PANELS_PER_ROW, max(panel_counts))
    figure = Figure(
        figsize=(PANEL_INCHES[0] * columns + label_width, panel_height * sum(rows) + LEGEND_INCHES),
        layout="constrained",
    )
    grid = figure.subplots(sum(rows), columns, squeeze=False)
    groups, first_row = [], 0
    for count, row_count in zip(panel_counts, rows):
        cells = list(grid[first_row : first_row + row_count].ravel())
        for ax in cells[count:]:
            ax.set_axis_off()
        groups.append(cells[:count])
        first_row += row_count
    figure.suptitle(title, fontsize="x-large")
    return figure, groups


def shared_legend(figure: Figure) -> None:
    """One legend below the panels holding every entry of every panel once; the panels' own go."""
    entries: dict[str, Artist] = {}
    for ax in figure.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    figure.legend(
        list(entries.values()),
        list(entries),
        loc="outside lower center",
        ncols=max(1, min(len(entries), 4)),
        title=LEGEND_TITLE,
    )


def _window_radius(ax: Axes, runs: pd.DataFrame, metric: str, null_audio: str | None) -> None:
    data = runs.assign(radius=pd.to_numeric(runs["window_radius"], errors="coerce"))
    sns.scatterplot(data=data, x="radius", y=metric, color="0.25", alpha=0.8, s=16, legend=False, zorder=3, ax=ax)
    sns.lineplot(
        data=data, x="radius", y=metric, estimator="mean", errorbar=INTERVAL, seed=SEED, marker="o", markersize=7, ax=ax
    )
    if null_audio:
        sns.lineplot(data=data, x="radius", y=null_audio, estimator="mean", linestyle="--", **NULL_AUDIO_MEAN, ax=ax)
    ax.set_xticks(sorted(data["radius"].dropna().unique()))
    ax.set_xlabel("window radius (1/FPS)")


def _encoder_layers(ax: Axes, runs: pd.DataFrame, metric: str, null_audio: str | None) -> None:
    # Points, not bars: a bar starts at 0 and hides differences of a point on a scale of 100.
    order = sorted_values("audio_layers", runs["audio_layers"])
    sns.stripplot(data=runs, x="audio_layers", y=metric, order=order, color="0.25", **SEED_POINTS, ax=ax)
    sns.pointplot(data=runs, x="audio_layers", y=metric, order=order, linestyle="none", **MEAN_POINTS, ax=ax)
    if null_audio:
        sns.pointplot(
            data=runs, x="audio_layers", y=null_audio, order=order, linestyle="none", **NULL_AUDIO_MEAN, ax=ax
        )
    ax.set_xlabel("audio layers")
    for label in ax.get_xticklabels():  # long names ("a:3-7-11+b:3-7-11") end at their tick
        label.set(rotation=25, horizontalalignment="right", rotation_mode="anchor")


def _points_by_hue(
    ax: Axes,
    data: pd.DataFrame,
    x: str,
    metric: str,
    hue: str,
    order: list[str],
    hue_order: list[str] | None,
    join: bool,
) -> None:
    """Per x value, the groups of `hue` side by side, each a point per seed and its mean with the
    interval; `join` draws a line through a group's means (a curve over K)."""
    options = {"data": data, "x": x, "y": metric, "hue": hue, "order": order, "hue_order": hue_order, "dodge": 0.3}
    means_line = {} if join else {"linestyle": "none"}  # pointplot joins a group's means unless told not to
    sns.stripplot(**options, **SEED_POINTS, palette="dark", legend=False, ax=ax)
    sns.pointplot(**options, **means_line, **MEAN_POINTS, ax=ax)


def _kshot(ax: Axes, runs: pd.DataFrame, metric: str, null_audio: str | None) -> None:
    data = runs.assign(paradigm=runs["pretrain"].map(PARADIGMS).fillna(runs["pretrain"]))
    paradigms = [PARADIGMS.get(value, value) for value in sorted_values("pretrain", runs["pretrain"])]
    _points_by_hue(ax, data, "k", metric, "paradigm", sorted_values("k", runs["k"]), paradigms, join=True)
    ax.set_xlabel("K (videos per class)")


def _curation(ax: Axes, runs: pd.DataFrame, metric: str, null_audio: str | None) -> None:
    data = runs.assign(
        finetuned=runs["finetune"]
        .map({"false": "pretrain only", "true": "pretrain + finetune"})
        .fillna(runs["finetune"])
    )
    order = sorted_values("curation", runs["curation"])
    _points_by_hue(ax, data, "curation", metric, "finetuned", order, hue_order=None, join=False)
    ax.set_xlabel("pretraining data curation")


def _models(ax: Axes, runs: pd.DataFrame, metric: str, null_audio: str | None) -> None:
    data = runs.assign(model_fps=runs["model"] + " @" + runs["fps"] + " FPS")
    order = list(dict.fromkeys(data.sort_values(["model", "fps"])["model_fps"]))
    sns.stripplot(data=data, y="model_fps", x=metric, order=order, color="0.25", **SEED_POINTS, ax=ax)
    sns.pointplot(data=data, y="model_fps", x=metric, order=order, linestyle="none", **MEAN_POINTS, ax=ax)
    ax.set_ylabel("")


PLOTTERS = {"fig4b": _window_radius, "fig4a": _encoder_layers, "table3": _kshot, "table2": _curation, "table1": _models}


def reference_lines(ax: Axes, references: dict[str, tuple[float, dict]], horizontal: bool = True) -> None:
    """Reference values (label -> value, line style) as lines across the panel, each named in the
    legend and at its end, on the side of the line that faces the middle of the panel so that the
    name stays inside it."""
    for label, (value, style) in references.items():
        (ax.axhline if horizontal else ax.axvline)(value, label=label, **style)
    low, high = ax.get_ylim() if horizontal else ax.get_xlim()
    for label, (value, style) in references.items():
        beyond_middle = value > (low + high) / 2
        text = {"color": style.get("color"), "fontsize": "small", "textcoords": "offset points"}
        if horizontal:
            ax.annotate(
                label,
                (1, value),
                xycoords=ax.get_yaxis_transform(),
                xytext=(-3, -2 if beyond_middle else 2),
                ha="right",
                va="top" if beyond_middle else "bottom",
                **text,
            )
        else:
            ax.annotate(
                label,
                (value, 1),
                xycoords=ax.get_xaxis_transform(),
                xytext=(-2 if beyond_middle else 2, -3),
                ha="right" if beyond_middle else "left",
                va="top",
                **text,
            )


def _references(ax: Axes, runs: pd.DataFrame, metric: str, horizontal: bool) -> None:
    references = {
        label: (runs[f"{metric}{suffix}"].mean(), REFERENCE_STYLE[label])
        for suffix, label in REFERENCES.items()
        if f"{metric}{suffix}" in runs and runs[f"{metric}{suffix}"].notna().any()
    }
    reference_lines(ax, references, horizontal)


def panel_title(group: str, header: str, several_groups: bool) -> str:
    """The metric, after its dataset when the figure has several (else the figure title names it)."""
    return f"{group}: {header}" if several_groups else header


def figure_title(title: str, groups: list[str]) -> str:
    return f"{title}: {groups[0]}" if len(groups) == 1 else title


def panel_metrics(table: Table, runs: pd.DataFrame) -> list[str]:
    """One group's panels: its metrics with a value, the paper's columns first; a null-audio
    control gets a panel only when its metric has none to be drawn on."""
    present = [metric for metric in table.metrics if runs[metric].notna().any()]
    own_panel = [
        m for m in present if not (m.endswith(NULL_AUDIO_SUFFIX) and m.removesuffix(NULL_AUDIO_SUFFIX) in present)
    ]
    return [metric for members in by_family(own_panel).values() for metric in members]


def plot_table(table: Table) -> Figure:
    """The figure of one table."""
    groups = [(label, runs, panel_metrics(table, runs)) for label, runs in iter_groups(table)]
    groups = [group for group in groups if group[2]]
    models = "model" in table.spec.keys
    # Table 1 lists its models on the y axis, labelled on the first panel of each row: a row grows
    # with their number, the figure with the longest label.
    height = max(PANEL_INCHES[1], 0.3 * table.runs["model"].nunique() + 1.5) if models else PANEL_INCHES[1]
    label_width = 0.075 * table.runs["model"].str.len().max() if models else 0.0
    labels = [label for label, _, _ in groups]
    figure, axes = panel_grid(
        figure_title(table.spec.title, labels), [len(metrics) for _, _, metrics in groups], height, label_width
    )
    plotter = PLOTTERS[table.name]
    horizontal = plotter is not _models  # Table 1's points lie along the metric on x
    for (label, runs, metrics), group_axes in zip(groups, axes):
        for position, (ax, metric) in enumerate(zip(group_axes, metrics)):
            info = metric_info(metric)
            null_audio = f"{metric}{NULL_AUDIO_SUFFIX}"
            plotter(ax, runs, metric, null_audio if null_audio in table.metrics else None)
            _references(ax, runs, metric, horizontal)
            ax.set_title(panel_title(label, info.header, len(groups) > 1), fontsize="medium")
            (ax.set_ylabel if horizontal else ax.set_xlabel)(info.header)
            if models and position % PANELS_PER_ROW:
                ax.tick_params(labelleft=False)
    shared_legend(figure)
    return figure
