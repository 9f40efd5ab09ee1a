"""The paper's tables from the tidy job-run frame (analysis/runs.py): pure pandas, no MLflow.

Each table has one row per configuration (its key params), averaged over seeds, under each dataset
(and FPS when several), with the reference rows first. Only FINISHED runs are averaged: a failed or
unfinished run has partial or no metrics and would bias the means, so it is counted in the
footnote instead. Tables with a gain (Table 2: finetuning, Table 3: pretraining) compare each
treated row with its baseline row seed by seed, the ablations of Fig. 4a and 4b each row with the
row above it (analysis/stats.py).

Printed (markdown), a table has the paper's shape: per dataset, one table with the paper's columns
(FVD, IA, IT, RelSync, AlignSync; EventSync too on the embedded default), then the open-class
scores, the null-audio controls and any other metric each in a table of their own, every one within
a 120-column terminal (analysis/render.py). The CSV and LaTeX files keep every metric in one table. The
metrics' names, order and families: analysis/metrics.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pandas as pd

from analysis.metrics import (
    FAMILY_HEADINGS,
    MISSING,
    OTHER,
    REFERENCES,
    by_family,
    metric_info,
    result_metrics,
    select_metrics,
    split_variant,
)
from analysis.render import Section, above_mark, footnote_sentences, gain_mark, printed_tables
from analysis.runs import FINISHED, MODEL_NAME
from analysis.stats import UNTESTED, PairedGain, paired_gain
from asva.tracking.store import CONTRACT_PARAMS

# Params that differ between the seeds of one row by design.
PER_SEED_PARAMS = ("seed", "config_hash")


def numeric_order(value: str) -> tuple[int, float, str]:
    """Numbers ascending, then non-numbers (K = "all") alphabetically."""
    try:
        return 0, float(value), ""
    except ValueError:
        return 1, math.inf, value


def layers_order(value: str) -> tuple[int, int, int, str]:
    """The paper's order (Fig. 4a), in which each row adds one thing to the row above: fewer
    encoders first, then fewer layers, then layers closer together: `a:11` < `a:7-9-11` <
    `a:3-7-11` < `a:3-7-11+b:3-7-11` (and alike for `ib3-7-11+beats3-7-11`)."""
    encoders = [
        [int(layer) for layer in re.findall(r"\d+", part.split(":", 1)[-1])] for part in value.split("+") if part
    ]
    spread = sum(max(layers) - min(layers) for layers in encoders if layers)
    return len(encoders), sum(map(len, encoders)), spread, value


def normalized_float(value: str) -> str:
    """ "1.50" and "1.5" are one radius."""
    try:
        return str(float(value))
    except ValueError:
        return value


ORDER: dict[str, Callable[[str], tuple]] = {
    "fps": numeric_order,
    "window_radius": numeric_order,
    "k": numeric_order,
    "audio_layers": layers_order,
    "pretrain": lambda value: (value != "false", value),
    "finetune": lambda value: (value != "false", value),
    "curation": lambda value: (value != "none", value),
}
NORMALIZE: dict[str, Callable[[str], str]] = {
    "window_radius": normalized_float,
    "k": str.lower,
    "pretrain": str.lower,
    "finetune": str.lower,
    "curation": str.lower,
}


def check_mark(value: str) -> str:
    return {"true": "✓", "false": "✗"}.get(value, value)


DISPLAY_VALUE: dict[str, Callable[[str], str]] = {"pretrain": check_mark, "finetune": check_mark}
GROUP_HEADERS = {"dataset": "Dataset", "fps": "FPS"}
# Params that tell two models of Table 1 apart, with their short names in a model's label.
MODEL_PARAMS = {
    "audio_layers": "layers",
    "window_radius": "r",
    "k": "K",
    "pretrain": "pretrain",
    "curation": "curation",
    "finetune": "finetune",
}


def sort_key(column: str) -> Callable[[str], tuple]:
    return ORDER.get(column, lambda value: (value,))


def sorted_values(column: str, values: pd.Series) -> list[str]:
    """The distinct values of a key column in table order (for plot axes)."""
    return sorted(values.dropna().unique(), key=sort_key(column))


@dataclass(frozen=True)
class Gain:
    """Rows with `param` = `treated` are annotated with their difference to the row with
    `param` = `baseline` and otherwise the same keys, tested seed by seed."""

    param: str
    baseline: str
    treated: str
    label: str


@dataclass(frozen=True)
class TableSpec:
    name: str  # the output files' stem and the --only choice
    study: str | None  # the asva.study whose runs it averages; None: every study
    title: str
    keys: tuple[str, ...]  # the params that make a row
    headers: tuple[str, ...]  # their column headers
    null_audio: bool  # show the null-audio controls
    gain: Gain | None = None
    # Test each row against the row above, seed by seed: an ablation over an ordered setting
    # (radius, audio layers) asks between which settings a metric changes.
    versus_above: bool = False


PRETRAINING = Gain("pretrain", "false", "true", "pretraining")
FINETUNING = Gain("finetune", "false", "true", "finetuning")
SPECS = {
    spec.name: spec
    for spec in (
        TableSpec(
            "table1", None, "Models compared on every metric (Table 1)", ("model", "fps"), ("Model", "FPS"), False
        ),
        TableSpec(
            "table2",
            "curation",
            "Curated pretraining data and finetuning (Table 2)",
            ("curation", "finetune"),
            ("Curation", "Finetune"),
            False,
            FINETUNING,
        ),
        TableSpec(
            "table3",
            "kshot",
            "K-shot finetuning, with and without pretraining (Table 3)",
            ("k", "pretrain"),
            ("K", "Pretrain"),
            False,
            PRETRAINING,
        ),
        TableSpec(
            "fig4a",
            "encoder_layers",
            "Audio multi-feature conditioning (Fig. 4a)",
            ("audio_layers",),
            ("Audio layers",),
            True,
            versus_above=True,
        ),
        TableSpec(
            "fig4b",
            "window_radius",
            "Audio window radius (Fig. 4b)",
            ("window_radius",),
            ("Radius (1/FPS)",),
            True,
            versus_above=True,
        ),
    )
}
# The paired comparisons of a row with another row, as CSV columns `<metric>_<name><stat>`.
GAIN = "gain"
VERSUS_ABOVE = "vs_above"
PAIRED_STATS = ("", "_p", "_ci_low", "_ci_high", "_pairs")


@dataclass
class Table:
    spec: TableSpec
    runs: pd.DataFrame  # the FINISHED job runs averaged here, key params normalized
    group_columns: list[str]
    metrics: list[str]
    numeric: pd.DataFrame  # per row: mean/std/n per metric (and comparisons and their tests): the CSV
    display: pd.DataFrame  # formatted cells, every row and metric in one table: the LaTeX
    sections: list[Section]  # the same cells as printed: per dataset and metric family
    excluded: dict[str, int]  # status -> number of job runs left out
    mixed_params: list[str]  # params that differ between the runs of one row

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def title(self) -> str:
        return self.spec.title

    def footnote(self) -> str:
        return " ".join(footnote_sentences(self))

    def to_markdown(self) -> str:
        return printed_tables(self)


def study_runs(runs: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    return runs if spec.study is None else runs[runs["study"] == spec.study]


def excluded_counts(runs: pd.DataFrame, spec: TableSpec) -> dict[str, int]:
    jobs = study_runs(runs, spec)
    return {
        str(status): int(count)
        for status, count in jobs.loc[jobs["status"] != FINISHED, "status"].value_counts().items()
    }


def skip_message(runs: pd.DataFrame, name: str) -> str:
    spec = SPECS[name]
    total = sum(excluded_counts(runs, spec).values())
    extra = f" ({total} excluded: failed/unfinished)" if total else ""
    source = f"study {spec.study}" if spec.study else "any study"
    return f"{name}: no finished job runs of {source}{extra}, skipped."


def group_label(columns: list[str], values: tuple) -> str:
    """ "synthetic", or "avsync15, 12 FPS" when a table groups by FPS too."""
    return ", ".join(f"{value} FPS" if column == "fps" else value for column, value in zip(columns, values))


def iter_groups(table: Table) -> Iterator[tuple[str, pd.DataFrame]]:
    """(label, runs) per dataset (and FPS), in table order."""
    for key, runs in _sorted_groups(table.runs, table.group_columns):
        yield group_label(table.group_columns, key), runs


def _sorted_groups(frame: pd.DataFrame, columns: list[str]) -> list[tuple[tuple, pd.DataFrame]]:
    """groupby in table order (numeric where numeric); keys are tuples, one value per column."""
    orders = {column: sort_key(column) for column in columns}
    if "model" in columns:  # a model's place is that of its params, not of its label's letters
        params = [p for p in MODEL_PARAMS if p in frame]
        rank = (
            {
                label: tuple(sort_key(p)(v) for p, v in zip(params, values))
                for label, values in frame.groupby("model")[params].first().apply(tuple, axis=1).items()
            }
            if params
            else {}
        )
        orders["model"] = lambda label: rank.get(label, ())
    return sorted(frame.groupby(columns), key=lambda item: tuple(orders[c](v) for c, v in zip(columns, item[0])))


def _stats(values: pd.Series, metric: str) -> dict[str, float]:
    values = values.dropna()
    return {
        f"{metric}_mean": values.mean() if len(values) else math.nan,
        f"{metric}_std": values.std(ddof=1) if len(values) > 1 else math.nan,
        f"{metric}_n": len(values),
    }


def _records(finished: pd.DataFrame, spec: TableSpec, group_columns: list[str], metrics: list[str]) -> list[dict]:
    """Numeric rows: per dataset group, the reference rows then one row per configuration."""
    records: list[dict] = []
    for group_key, group in _sorted_groups(finished, group_columns):
        group_values = dict(zip(group_columns, group_key))
        for suffix, label in REFERENCES.items():
            present = [m for m in metrics if f"{m}{suffix}" in group and group[f"{m}{suffix}"].notna().any()]
            if not present:
                continue
            record = {**group_values, "reference": label, **{key: "" for key in spec.keys}, "n": math.nan}
            for metric in metrics:
                record |= _stats(group[f"{metric}{suffix}"] if metric in present else pd.Series(dtype=float), metric)
            records.append(record)
        keys = list(spec.keys)
        for row_key, row in _sorted_groups(group, keys):
            record = {**group_values, "reference": "", **dict(zip(keys, row_key)), "n": len(row)}
            for metric in metrics:
                record |= _stats(row[metric], metric)
            records.append(record)
    return records


def _gain_pairs(numeric: pd.DataFrame, row_columns: list[str], gain: Gain) -> dict[int, int]:
    """Each treated row -> the baseline row with the same other keys (rows without one: none)."""
    configurations = numeric.loc[numeric["reference"] == "", row_columns]
    index_of = {tuple(row): index for index, row in configurations.iterrows()}
    position = row_columns.index(gain.param)
    pairs = {}
    for index, row in configurations[configurations[gain.param] == gain.treated].iterrows():
        key = tuple(row)
        baseline = index_of.get((*key[:position], gain.baseline, *key[position + 1 :]))
        if baseline is not None:
            pairs[index] = baseline
    return pairs


def _pairs_with_row_above(numeric: pd.DataFrame, group_columns: list[str]) -> dict[int, int]:
    """Each configuration row -> the configuration row above it in its dataset group."""
    configurations = numeric[numeric["reference"] == ""]
    pairs: dict[int, int] = {}
    for _, group in configurations.groupby(group_columns, sort=False):
        pairs |= dict(zip(group.index[1:], group.index[:-1]))
    return pairs


def _compare_rows(
    numeric: pd.DataFrame,
    finished: pd.DataFrame,
    row_columns: list[str],
    metrics: list[str],
    pairs: dict[int, int],
    name: str,
) -> None:
    """Per pair (row -> the row it is compared with) and metric: the difference of the two rows'
    means, and its paired test over the seeds both rows have, as `<metric>_<name>`,
    `<metric>_<name>_p`, `_ci_low`, `_ci_high` and `_pairs`; nan for rows without a pair."""
    seed_means = {key: runs.groupby("seed")[metrics].mean() for key, runs in finished.groupby(row_columns)}
    key_of = {index: tuple(numeric.loc[index, row_columns]) for index in {*pairs, *pairs.values()}}
    results: dict[str, list[float]] = {f"{metric}_{name}{stat}": [] for metric in metrics for stat in PAIRED_STATS}
    for index, other in pairs.items():
        paired = seed_means[key_of[index]].join(seed_means[key_of[other]], how="inner", rsuffix="\0other")
        for metric in metrics:
            both = paired[[metric, f"{metric}\0other"]].dropna()
            test: PairedGain = (
                paired_gain(both.iloc[:, 0].to_numpy(), both.iloc[:, 1].to_numpy()) if len(both) else UNTESTED
            )
            difference = numeric.loc[index, f"{metric}_mean"] - numeric.loc[other, f"{metric}_mean"]
            for stat, value in zip(PAIRED_STATS, (difference, test.p_value, test.ci_low, test.ci_high, test.pairs)):
                results[f"{metric}_{name}{stat}"].append(value)
    for column, values in results.items():
        numeric[column] = pd.Series(values, index=list(pairs), dtype=float)


def _cells(numeric: pd.DataFrame, spec: TableSpec, metrics: list[str]) -> pd.DataFrame:
    """Formatted cells, one row per numeric row: the key columns (by header), n, one column per
    metric (by metric name) with its marks."""
    rows = []
    for _, record in numeric.iterrows():
        reference = record["reference"]
        row = {}
        for position, (key, header) in enumerate(zip(spec.keys, spec.headers)):
            if reference:
                row[header] = reference if position == 0 else ""
            else:
                row[header] = DISPLAY_VALUE.get(key, str)(record[key])
        row["n"] = "" if reference else str(int(record["n"]))
        for metric in metrics:
            gain = record.get(f"{metric}_{GAIN}", math.nan)
            mark = "" if pd.isna(gain) else gain_mark(record[f"{metric}_{GAIN}_p"], record[f"{metric}_{GAIN}_pairs"])
            if spec.versus_above:
                mark += above_mark(*(record[f"{metric}_{VERSUS_ABOVE}{stat}"] for stat in ("", "_p", "_pairs")))
            # A reference row is a bound, not a result: its mean alone, as in the paper.
            std = math.nan if reference else record[f"{metric}_std"]
            row[metric] = metric_info(metric).cell(
                record[f"{metric}_mean"], std, int(record[f"{metric}_n"]), gain, mark
            )
        rows.append(row)
    return pd.DataFrame(rows, index=numeric.index)


def _sections(
    numeric: pd.DataFrame, cells: pd.DataFrame, spec: TableSpec, group_columns: list[str], metrics: list[str]
) -> list[Section]:
    """The printed tables: per dataset group, one per metric family with a value in it. A family's
    columns are named without its variant (the heading says it); reference rows appear where they
    have a value. When every row of a group averages the same number of runs (a sweep's seeds),
    the heading says n once instead of a column repeating it: that column's width is what a
    6-metric table lacks in 120 columns when most cells carry a mark."""
    sections = []
    for values, group in numeric.groupby(group_columns, sort=False):
        label = group_label(group_columns, values)
        group_cells = cells.loc[group.index]
        run_counts = group.loc[group["reference"] == "", "n"].unique()
        key_columns = [*spec.headers, "n"]
        runs_note = ""
        if len(run_counts) == 1:
            runs_note = f"; n = {run_counts[0]} per row"
            key_columns.remove("n")
        present = [metric for metric in metrics if (group_cells[metric] != MISSING).any()]
        for family, members in by_family(present).items():
            shown = (group["reference"] == "") | (group_cells[members] != MISSING).any(axis=1)
            headers = {
                metric: metric_info(metric).column
                if family == OTHER
                else metric_info(split_variant(metric)[0]).label + metric_info(metric).arrow
                for metric in members
            }
            frame = group_cells.loc[shown, [*key_columns, *members]].rename(columns=headers).reset_index(drop=True)
            heading = (f"{label}: {FAMILY_HEADINGS[family]}" if family else label) + runs_note
            sections.append(Section(heading, frame, key_columns))
    return sections


def _full_display(
    numeric: pd.DataFrame, cells: pd.DataFrame, group_columns: list[str], metrics: list[str]
) -> pd.DataFrame:
    """Every row and metric in one table, the dataset (and FPS) as columns: the LaTeX."""
    groups = numeric[group_columns].rename(columns=GROUP_HEADERS)
    return pd.concat(
        [groups, cells.rename(columns={metric: metric_info(metric).column for metric in metrics})], axis=1
    ).reset_index(drop=True)


def mixed_params(finished: pd.DataFrame, row_columns: list[str]) -> list[str]:
    """Contract params that vary inside a row: such a row would average different configurations."""
    candidates = [p for p in CONTRACT_PARAMS if p not in (*row_columns, *PER_SEED_PARAMS) and p in finished]
    counts = finished.groupby(row_columns)[candidates].nunique(dropna=False)
    return [p for p in candidates if (counts[p] > 1).any()]


def model_labels(finished: pd.DataFrame) -> pd.Series:
    """Table 1's model names: the model, then the params in which the compared models differ."""
    names = (
        finished[MODEL_NAME].fillna("model").astype(str)
        if MODEL_NAME in finished
        else pd.Series("model", index=finished.index)
    )
    varying = [p for p in MODEL_PARAMS if p in finished and finished[p].nunique(dropna=False) > 1]
    if not varying:
        return names
    details = [finished[p].astype(str).map(lambda value, param=p: model_detail(param, value)) for p in varying]
    return names + " (" + pd.concat(details, axis=1).agg(", ".join, axis=1) + ")"


def model_detail(param: str, value: str) -> str:
    """A param in a model's label, as short as the tables show it: `r=0.5`, `pretrain ✓`."""
    if param in DISPLAY_VALUE:
        return f"{MODEL_PARAMS[param]} {DISPLAY_VALUE[param](value)}"
    return f"{MODEL_PARAMS[param]}={value}"


def build_table(runs: pd.DataFrame, name: str, metric_patterns: tuple[str, ...] | None = None) -> Table | None:
    """One table from the tidy frame of job runs, with the metrics matching `metric_patterns` (all
    without); None when it has no finished run."""
    spec = SPECS[name]
    jobs = study_runs(runs, spec)
    finished = jobs[jobs["status"] == FINISHED].copy()
    if finished.empty:
        return None
    # A frame built by hand may lack contract params (the seed that pairs rows): empty columns.
    finished = finished.reindex(
        columns=[*finished.columns, *(param for param in CONTRACT_PARAMS if param not in finished)]
    )
    for column in ("dataset", "fps", *MODEL_PARAMS):
        if column in finished:
            finished[column] = finished[column].fillna("").astype(str).map(NORMALIZE.get(column, str))
    if "model" in spec.keys:
        finished["model"] = model_labels(finished)
    group_columns = ["dataset"] + (["fps"] if "fps" not in spec.keys and finished["fps"].nunique() > 1 else [])
    row_columns = [*group_columns, *spec.keys]
    metrics = select_metrics(result_metrics(finished, spec.null_audio), metric_patterns)
    numeric = pd.DataFrame(_records(finished, spec, group_columns, metrics))
    comparisons = {GAIN: _gain_pairs(numeric, row_columns, spec.gain)} if spec.gain else {}
    if spec.versus_above:
        comparisons[VERSUS_ABOVE] = _pairs_with_row_above(numeric, group_columns)
    for comparison, pairs in comparisons.items():
        _compare_rows(numeric, finished, row_columns, metrics, pairs, comparison)
    stats = ["mean", "std", "n", *(f"{comparison}{stat}" for comparison in comparisons for stat in PAIRED_STATS)]
    numeric = numeric[
        [*group_columns, "reference", *spec.keys, "n", *(f"{m}_{stat}" for m in metrics for stat in stats)]
    ]
    numeric = numeric.astype({"n": "Int64"})
    cells = _cells(numeric, spec, metrics)
    return Table(
        spec=spec,
        runs=finished,
        group_columns=group_columns,
        metrics=metrics,
        numeric=numeric,
        display=_full_display(numeric, cells, group_columns, metrics),
        sections=_sections(numeric, cells, spec, group_columns, metrics),
        excluded=excluded_counts(runs, spec),
        mixed_params=mixed_params(finished, [*group_columns, *spec.keys]),
    )
