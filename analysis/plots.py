"""Seaborn figures of the tables: one point per seed and the mean with its 95% interval, the
per-seed spread that a mean ± std cell hides.

One row of panels per dataset (and FPS), one panel per metric. The Groundtruth and Static
reference values are drawn as horizontal lines, and a metric's null-audio control is drawn on
its panel rather than in a panel of its own, so that the gap that audio makes is visible.
Seaborn bootstraps the 95% intervals; its seed is fixed so that a figure rebuilds identically.
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
INTERVAL = ("ci", 95)
SEED = 0


def _window_radius(ax: Axes, runs: pd.DataFrame, metric: str, null_audio: str | None) -> None:
    data = runs.assign(radius=pd.to_numeric(runs["window_radius"], errors="coerce"))
    sns.scatterplot(data=data, x="radius", y=metric, color="0.55", alpha=0.7, s=18, label="seed", ax=ax)
    sns.lineplot(data=data, x="radius", y=metric, estimator="mean", errorbar=INTERVAL, seed=SEED, marker="o", label="mean, 95% CI", ax=ax)
    if null_audio:
        sns.lineplot(
            data=data, x="radius", y=null_audio, estimator="mean", errorbar=None, marker="x", linestyle="--", color=NULL_AUDIO_COLOR, label="null audio", ax=ax
        )
    ax.set_xlabel("window radius (1/FPS)")


def _encoder_layers(ax: Axes, runs: pd.DataFrame, metric: str, null_audio: str | None) -> None:
    order = sorted_values("audio_layers", runs["audio_layers"])
    sns.barplot(data=runs, x="audio_layers", y=metric, order=order, errorbar=INTERVAL, seed=SEED, color="tab:blue", alpha=0.8, ax=ax)
    sns.stripplot(data=runs, x="audio_layers", y=metric, order=order, color="black", size=3, ax=ax)
    if null_audio:
        sns.pointplot(
            data=runs, x="audio_layers", y=null_audio, order=order, errorbar=None, markers="x", linestyle="none", color=NULL_AUDIO_COLOR, label="null audio", ax=ax
        )
    ax.set_xlabel("audio layers")
    ax.tick_params(axis="x", labelrotation=30)


def _kshot(ax: Axes, runs: pd.DataFrame, metric: str, null_audio: str | None) -> None:
    data = runs.assign(paradigm=runs["pretrain"].map(PARADIGMS).fillna(runs["pretrain"]))
    options = {
        "data": data,
        "x": "k",
        "y": metric,
        "hue": "paradigm",
        "order": sorted_values("k", runs["k"]),
        "hue_order": [PARADIGMS.get(value, value) for value in sorted_values("pretrain", runs["pretrain"])],
        "dodge": 0.3,
        "ax": ax,
    }
    sns.stripplot(**options, size=3, alpha=0.6, legend=False)
    sns.pointplot(**options, errorbar=INTERVAL, seed=SEED)
    ax.set_xlabel("K (videos per class)")


def _curation(ax: Axes, runs: pd.DataFrame, metric: str, null_audio: str | None) -> None:
    data = runs.assign(finetuned=runs["finetune"].map({"false": "pretrain only", "true": "pretrain + finetune"}).fillna(runs["finetune"]))
    options = {"data": data, "x": "curation", "y": metric, "hue": "finetuned", "order": sorted_values("curation", runs["curation"]), "ax": ax}
    sns.barplot(**options, errorbar=INTERVAL, seed=SEED, alpha=0.8)
    sns.stripplot(**options, dodge=True, palette="dark:black", size=3, legend=False)
    ax.set_xlabel("pretraining data curation")


def _models(ax: Axes, runs: pd.DataFrame, metric: str, null_audio: str | None) -> None:
    data = runs.assign(model_fps=runs["model"] + " @" + runs["fps"] + " FPS")
    order = list(dict.fromkeys(data.sort_values(["model", "fps"])["model_fps"]))
    sns.barplot(data=data, y="model_fps", x=metric, order=order, errorbar=INTERVAL, seed=SEED, color="tab:blue", alpha=0.8, ax=ax)
    sns.stripplot(data=data, y="model_fps", x=metric, order=order, color="black", size=3, ax=ax)
    ax.set_ylabel("")


PLOTTERS = {"fig4b": _window_radius, "fig4a": _encoder_layers, "table3": _kshot, "table2": _curation, "table1": _models}


def _references(ax: Axes, runs: pd.DataFrame, metric: str, horizontal: bool) -> None:
    for suffix, label in REFERENCES.items():
        column = f"{metric}{suffix}"
        if column in runs and runs[column].notna().any():
            line = ax.axhline if horizontal else ax.axvline
            line(runs[column].mean(), label=label, **REFERENCE_STYLE[label])


def plot_table(table: Table) -> Figure:
    """The figure of one study table (not attached to pyplot, so nothing piles up in a loop)."""
    metrics = [m for m in table.metrics if not m.endswith(NULL_AUDIO_SUFFIX)]
    # Per dataset only the metrics it has: datasets with paper and embedded metrics share a figure.
    groups = [(label, runs, [m for m in metrics if runs[m].notna().any()]) for label, runs in iter_groups(table)]
    columns = max(len(present) for _, _, present in groups)
    models = "model" in table.spec.keys
    # Table 1 lists its models on the y axis, labelled once per row of panels: the row grows
    # with their number, the figure with the longest label.
    height = max(3.4, 0.3 * table.runs["model"].nunique() + 1.5) if models else 3.4
    label_width = 0.075 * table.runs["model"].str.len().max() if models else 0
    figure = Figure(figsize=(3.6 * columns + label_width, height * len(groups)), layout="constrained")
    axes = figure.subplots(len(groups), columns, squeeze=False)
    plotter = PLOTTERS[table.name]
    for row, (label, runs, present) in enumerate(groups):
        for ax in axes[row][len(present) :]:
            ax.set_axis_off()
        for column, (ax, metric) in enumerate(zip(axes[row], present)):
            info = metric_info(metric)
            null_audio = f"{metric}{NULL_AUDIO_SUFFIX}"
            plotter(ax, runs, metric, null_audio if null_audio in table.metrics else None)
            horizontal = plotter is not _models  # Table 1's bars lie: the metric is on x
            _references(ax, runs, metric, horizontal)
            ax.set_title(f"{label}: {info.header}", fontsize="medium")
            (ax.set_ylabel if horizontal else ax.set_xlabel)(info.header)
            if models and column:
                ax.tick_params(labelleft=False)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize="x-small")
    figure.suptitle(table.spec.title)
    return figure
