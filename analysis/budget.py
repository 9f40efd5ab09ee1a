"""The annotation-budget curve: how many manually curated videos pretraining saves (Table 3).

The paper's claim "pretraining with K=1 beats finetuning alone with 10x more data" made
measurable: for every K of the finetune-only paradigm and every metric with a direction, the
smallest K with pretraining whose mean matches or beats it (equal at the table's precision counts
as a match), and the ratio K(finetune only) / K(pretrain). Only numeric K take part: K = "all" has
no count in the params. A ratio of inf means the pretrained model without finetuning (K = 0)
already matches.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from analysis.metrics import MISSING, by_family, metric_info
from analysis.plots import (
    INTERVAL,
    PARADIGMS,
    SEED,
    figure_title,
    panel_grid,
    panel_title,
    reference_lines,
    shared_legend,
)
from analysis.render import TERMINAL_COLUMNS, markdown_table
from analysis.tables import Table, iter_groups
from asva.tracking.store import NULL_AUDIO_SUFFIX

COLUMNS = ["group", "metric", "k_finetune_only", "value_finetune_only", "k_pretrain", "value_pretrain", "ratio"]


def numeric_k(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def matches_or_beats(candidate: float, target: float, higher_is_better: bool, decimals: int) -> bool:
    candidate, target = round(candidate, decimals), round(target, decimals)
    return candidate >= target if higher_is_better else candidate <= target


def smallest_matching_k(
    finetune_only: dict[float, float], pretrain: dict[float, float], higher_is_better: bool, decimals: int
) -> list[tuple[float, float, float | None, float, float]]:
    """Per finetune-only K (ascending): (K, its value, smallest pretrain K that matches or beats
    it or None, that K's value, the ratio of the two Ks)."""
    rows = []
    for k_base, value in sorted(finetune_only.items()):
        matching = [
            k
            for k, candidate in sorted(pretrain.items())
            if matches_or_beats(candidate, value, higher_is_better, decimals)
        ]
        if not matching:
            rows.append((k_base, value, None, math.nan, math.nan))
            continue
        k_pre = matching[0]
        rows.append((k_base, value, k_pre, pretrain[k_pre], math.inf if k_pre == 0 else k_base / k_pre))
    return rows


def _means(runs: pd.DataFrame, metric: str, pretrain: str) -> dict[float, float]:
    rows = (
        runs[runs["pretrain"] == pretrain].assign(k_number=runs["k"].map(numeric_k)).dropna(subset=["k_number", metric])
    )
    return rows.groupby("k_number")[metric].mean().to_dict()


def _directed_metrics(table: Table) -> list[str]:
    return [
        m for m in table.metrics if not m.endswith(NULL_AUDIO_SUFFIX) and metric_info(m).higher_is_better is not None
    ]


@dataclass
class Budget:
    table: Table  # the Table 3 it is computed from
    numeric: pd.DataFrame  # COLUMNS: the CSV
    display: pd.DataFrame
    name: str = "budget"
    title: str = "Annotation budget: smallest K with pretraining that matches finetuning alone"

    def footnote(self) -> str:
        return (
            "ratio = K(finetune only) / K(pretrain); inf: the pretrained model matches without finetuning (K = 0); "
            f"{MISSING}: no K with pretraining matches. Means over finished runs, compared at the table's precision."
        )

    def to_markdown(self) -> str:
        footnote = textwrap.fill(self.footnote(), TERMINAL_COLUMNS)
        return f"### {self.title}\n\n{markdown_table(self.display)}\n\n{footnote}\n"


def budget_curve(table: Table) -> Budget | None:
    """The budget rows of a Table 3; None when no metric has both paradigms at a numeric K."""
    records, shown = [], []
    for label, runs in iter_groups(table):
        for metric in _directed_metrics(table):
            info = metric_info(metric)
            finetune_only, pretrain = _means(runs, metric, "false"), _means(runs, metric, "true")
            if not finetune_only or not pretrain:
                continue
            for k_base, value, k_pre, value_pre, ratio in smallest_matching_k(
                finetune_only, pretrain, bool(info.higher_is_better), info.decimals
            ):
                records.append(dict(zip(COLUMNS, [label, metric, k_base, value, k_pre, value_pre, ratio])))
                shown.append(
                    {
                        "Dataset": label,
                        "Metric": info.header,
                        "K finetune only": f"{k_base:g}",
                        "value": info.number(value),
                        "smallest K pretrain": MISSING if k_pre is None else f"{k_pre:g}",
                        "value ": info.number(value_pre),
                        "ratio": MISSING if math.isnan(ratio) else "inf" if math.isinf(ratio) else f"{ratio:.1f}x",
                    }
                )
    if not records:
        return None
    return Budget(table, pd.DataFrame(records, columns=COLUMNS), pd.DataFrame(shown))


def plot_budget(budget: Budget) -> Figure:
    """Metric vs K (log axis) for both paradigms: one point per seed, the mean with its 95% CI;
    the pretrained model without finetuning (K = 0, off a log axis) as a horizontal line. Panels
    as in the tables' figures: rows of at most 3 per dataset, the paper's columns first."""
    table = budget.table
    groups = dict(iter_groups(table))
    panels = {
        label: [metric for members in by_family(list(rows["metric"].unique())).values() for metric in members]
        for label, rows in budget.numeric.groupby("group", sort=False)
    }
    figure, axes = panel_grid(figure_title(budget.title, list(panels)), [len(metrics) for metrics in panels.values()])
    for (label, metrics), group_axes in zip(panels.items(), axes):
        runs = groups[label]
        for ax, metric in zip(group_axes, metrics):
            data = runs.assign(k_number=runs["k"].map(numeric_k), paradigm=runs["pretrain"].map(PARADIGMS)).dropna(
                subset=["k_number", metric, "paradigm"]
            )
            positive = data[data["k_number"] > 0]
            options = {
                "data": positive,
                "x": "k_number",
                "y": metric,
                "hue": "paradigm",
                "hue_order": list(PARADIGMS.values()),
                "ax": ax,
            }
            sns.scatterplot(**options, alpha=0.5, s=16, legend=False)
            sns.lineplot(**options, errorbar=INTERVAL, seed=SEED, marker="o", markersize=7)
            zero = data.loc[(data["k_number"] == 0) & (data["pretrain"] == "true"), metric]
            if len(zero):
                reference_lines(ax, {"pretrain only (K=0)": (zero.mean(), {"color": "tab:orange", "linestyle": ":"})})
            ax.set_xscale("log")
            ax.set_xlabel("K (videos per class, log scale)")
            info = metric_info(metric)
            ax.set_ylabel(info.header)
            ax.set_title(panel_title(label, info.header, len(panels) > 1), fontsize="medium")
    shared_legend(figure)
    return figure
