"""Seaborn figures of the study tables: the per-seed spread that a mean ± std cell hides.

One row of panels per dataset (and FPS), one panel per metric. The Groundtruth and Static
reference values are drawn as horizontal lines, and a metric's null-audio control is drawn on
its panel rather than in a panel of its own, so that the gap that audio makes is visible.
"""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis.tables import NULL_AUDIO_SUFFIX, REFERENCES, Table, iter_groups, metric_info, sorted_values

REFERENCE_STYLE = {"Groundtruth": {"color": "tab:green", "linestyle": "--"}, "Static": {"color": "0.4", "linestyle": ":"}}
NULL_AUDIO_COLOR = "tab:red"
PARADIGMS = {"false": "finetune only", "true": "pretrain + finetune"}


def _window_radius(ax: Axes, runs: pd.DataFrame, metric: str, null_audio: str | None) -> None:
    data = runs.assign(radius=pd.to_numeric(runs["window_radius"], errors="coerce"))
    sns.scatterplot(data=data, x="radius", y=metric, color="0.55", alpha=0.7, s=18, label="seed", ax=ax)
    sns.lineplot(data=data, x="radius", y=metric, estimator="mean", errorbar=None, marker="o", label="mean", ax=ax)
    if null_audio:
        sns.lineplot(
            data=data, x="radius", y=null_audio, estimator="mean", errorbar=None, marker="x", linestyle="--", color=NULL_AUDIO_COLOR, label="null audio", ax=ax
        )
    ax.set_xlabel("window radius (1/FPS)")


def _encoder_layers(ax: Axes, runs: pd.DataFrame, metric: str, null_audio: str | None) -> None:
    order = sorted_values("audio_layers", runs["audio_layers"])
    sns.barplot(data=runs, x="audio_layers", y=metric, order=order, errorbar="sd", color="tab:blue", alpha=0.8, ax=ax)
    sns.stripplot(data=runs, x="audio_layers", y=metric, order=order, color="black", size=3, ax=ax)
    if null_audio:
        sns.pointplot(
            data=runs, x="audio_layers", y=null_audio, order=order, errorbar=None, markers="x", linestyle="none", color=NULL_AUDIO_COLOR, label="null audio", ax=ax
        )
    ax.set_xlabel("audio layers")
    ax.tick_params(axis="x", labelrotation=30)


def _kshot(ax: Axes, runs: pd.DataFrame, metric: str, null_audio: str | None) -> None:
    data = runs.assign(paradigm=runs["pretrain"].map(PARADIGMS).fillna(runs["pretrain"]))
    sns.pointplot(
        data=data,
        x="k",
        y=metric,
        hue="paradigm",
        order=sorted_values("k", runs["k"]),
        hue_order=[PARADIGMS.get(value, value) for value in sorted_values("pretrain", runs["pretrain"])],
        errorbar="sd",
        dodge=0.2,
        ax=ax,
    )
    ax.set_xlabel("K (videos per class)")


PLOTTERS = {"window_radius": _window_radius, "encoder_layers": _encoder_layers, "kshot": _kshot}


def _references(ax: Axes, runs: pd.DataFrame, metric: str) -> None:
    for suffix, label in REFERENCES.items():
        column = f"{metric}{suffix}"
        if column in runs and runs[column].notna().any():
            ax.axhline(runs[column].mean(), label=label, **REFERENCE_STYLE[label])


def plot_table(table: Table) -> Figure:
    """The figure of one study table (not attached to pyplot, so nothing piles up in a loop)."""
    metrics = [m for m in table.metrics if not m.endswith(NULL_AUDIO_SUFFIX)]
    # Per dataset only the metrics it has: datasets with paper and embedded metrics share a figure.
    groups = [(label, runs, [m for m in metrics if runs[m].notna().any()]) for label, runs in iter_groups(table)]
    columns = max(len(present) for _, _, present in groups)
    figure = Figure(figsize=(4.2 * columns, 3.4 * len(groups)), layout="constrained")
    axes = figure.subplots(len(groups), columns, squeeze=False)
    plotter = PLOTTERS[table.spec.study]
    for row, (label, runs, present) in enumerate(groups):
        for ax in axes[row][len(present) :]:
            ax.set_axis_off()
        for ax, metric in zip(axes[row], present):
            info = metric_info(metric)
            null_audio = f"{metric}{NULL_AUDIO_SUFFIX}"
            plotter(ax, runs, metric, null_audio if null_audio in table.metrics else None)
            _references(ax, runs, metric)
            ax.set_title(f"{label}: {info.header}", fontsize="medium")
            ax.set_ylabel(info.header)
            ax.legend(fontsize="x-small")
    figure.suptitle(table.spec.title)
    return figure
