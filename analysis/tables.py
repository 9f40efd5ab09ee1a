"""Study tables from the tidy job-run frame (analysis/runs.py): pure pandas, no MLflow.

Each table has one row per configuration (the study's key params), averaged over seeds, under
each dataset (and FPS when several), with the reference rows first. Only FINISHED runs are
averaged: a failed or unfinished run has partial or no metrics and would bias the means, so it is
counted in the footnote instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pandas as pd

from analysis.runs import FINISHED, metric_columns
from asva.tracking.store import BOOKKEEPING_METRICS, CONTRACT_PARAMS

# Metrics listed first, in the paper's column order, then their embedded stand-ins.
METRIC_ORDER = ("fvd", "ia", "it", "relsync", "alignsync", "fd_pixel_synth", "event_sync")
NULL_AUDIO_SUFFIX = "_null_audio"
REFERENCES = {"_ref_groundtruth": "Groundtruth", "_ref_static": "Static"}
# Scalars that jobs log for bookkeeping, not results: a table column of them would compare nothing.
# Params that differ between the seeds of one row by design.
PER_SEED_PARAMS = ("seed", "config_hash")
MISSING = "–"


@dataclass(frozen=True)
class MetricInfo:
    name: str
    display: str
    higher_is_better: bool | None  # None: a control or an unknown metric, shown without arrow
    decimals: int

    @property
    def header(self) -> str:
        arrow = {True: " ↑", False: " ↓", None: ""}[self.higher_is_better]
        return f"{self.display}{arrow}"

    def number(self, value: float) -> str:
        return MISSING if pd.isna(value) else f"{value:.{self.decimals}f}"

    def cell(self, mean: float, std: float, n: int, gain: float = math.nan) -> str:
        """`mean ± std` (just the mean for a single run) and the pretraining gain as `(↑x)`."""
        if n == 0 or pd.isna(mean):
            return MISSING
        text = self.number(mean) if n < 2 or pd.isna(std) else f"{self.number(mean)} ± {self.number(std)}"
        if not pd.isna(gain):
            rounded = round(gain, self.decimals)
            arrow = "↑" if rounded > 0 else "↓" if rounded < 0 else "±"
            text += f" ({arrow}{self.number(abs(gain))})"
        return text


# Display names keep the "(synthetic)" marker so no embedded stand-in is read as a paper metric.
KNOWN_METRICS = {
    info.name: info
    for info in (
        MetricInfo("fvd", "FVD", False, 1),
        MetricInfo("ia", "IA", True, 2),
        MetricInfo("it", "IT", True, 2),
        MetricInfo("relsync", "RelSync", True, 2),
        MetricInfo("alignsync", "AlignSync", True, 2),
        MetricInfo("fd_pixel_synth", "FD-pixel (synthetic)", False, 1),
        MetricInfo("event_sync", "EventSync (synthetic)", True, 2),
    )
}


def metric_info(name: str) -> MetricInfo:
    """Registry entry of a metric; Fréchet distances (fvd, fd_*) are lower-better with 1 decimal."""
    if name in KNOWN_METRICS:
        return KNOWN_METRICS[name]
    if name.endswith(NULL_AUDIO_SUFFIX):
        base = metric_info(name.removesuffix(NULL_AUDIO_SUFFIX))
        return MetricInfo(name, f"{base.display}, null audio", None, base.decimals)
    if name.startswith(("fvd", "fd_")):
        return MetricInfo(name, name, False, 1)
    return MetricInfo(name, name, None, 2)


def metric_sort_key(name: str) -> tuple[int, str, bool]:
    """Paper order, then others alphabetically; a null-audio control right after its metric."""
    base = name.removesuffix(NULL_AUDIO_SUFFIX)
    rank = METRIC_ORDER.index(base) if base in METRIC_ORDER else len(METRIC_ORDER)
    return rank, base, name != base


def reference_of(name: str) -> tuple[str, str] | None:
    """(metric, reference row label) for `<metric>_ref_groundtruth` / `<metric>_ref_static`."""
    for suffix, label in REFERENCES.items():
        if name.endswith(suffix):
            return name.removesuffix(suffix), label
    return None


def result_metrics(runs: pd.DataFrame, null_audio: bool) -> list[str]:
    """Table columns: metrics with at least one value, without references and bookkeeping."""
    names = [
        name
        for name in metric_columns(runs)
        if runs[name].notna().any()
        and name not in BOOKKEEPING_METRICS
        and reference_of(name) is None
        and (null_audio or not name.endswith(NULL_AUDIO_SUFFIX))
    ]
    return sorted(names, key=metric_sort_key)


def numeric_order(value: str) -> tuple[int, float, str]:
    """Numbers ascending, then non-numbers (K = "all") alphabetically."""
    try:
        return 0, float(value), ""
    except ValueError:
        return 1, math.inf, value


def layers_order(value: str) -> tuple[int, int, str]:
    """Fewer encoders first, then fewer layers: `a:11` < `a:3-7-11` < `a:3-7-11+b:3-7-11`."""
    encoders = [part for part in value.split("+") if part]
    layers = sum(len(part.split(":", 1)[-1].split("-")) for part in encoders)
    return len(encoders), layers, value


def normalized_float(value: str) -> str:
    """"1.50" and "1.5" are one radius."""
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
}
NORMALIZE: dict[str, Callable[[str], str]] = {
    "window_radius": normalized_float,
    "k": str.lower,
    "pretrain": str.lower,
}
DISPLAY_VALUE: dict[str, Callable[[str], str]] = {"pretrain": lambda value: {"true": "✓", "false": "✗"}.get(value, value)}
GROUP_HEADERS = {"dataset": "Dataset", "fps": "FPS"}


def sort_key(column: str) -> Callable[[str], tuple]:
    return ORDER.get(column, lambda value: (value,))


def sorted_values(column: str, values: pd.Series) -> list[str]:
    """The distinct values of a key column in table order (for plot axes)."""
    return sorted(values.dropna().unique(), key=sort_key(column))


@dataclass(frozen=True)
class TableSpec:
    study: str
    title: str
    keys: tuple[str, ...]  # the params that make a row
    headers: tuple[str, ...]  # their column headers
    null_audio: bool  # show the null-audio controls
    pretrain_gain: bool  # annotate pretrain=true rows with the gain over pretrain=false


SPECS = {
    spec.study: spec
    for spec in (
        TableSpec("window_radius", "Audio window radius (Fig. 4b)", ("window_radius",), ("Radius (1/FPS)",), True, False),
        TableSpec("encoder_layers", "Audio multi-feature conditioning (Fig. 4a)", ("audio_layers",), ("Audio layers",), True, False),
        TableSpec("kshot", "K-shot finetuning, with and without pretraining (Table 3)", ("k", "pretrain"), ("K", "Pretrain"), False, True),
    )
}


@dataclass
class Table:
    spec: TableSpec
    runs: pd.DataFrame  # the FINISHED job runs averaged here, key params normalized
    group_columns: list[str]
    metrics: list[str]
    numeric: pd.DataFrame  # per row: mean/std/n per metric (and gain): the CSV
    display: pd.DataFrame  # formatted cells: the markdown
    excluded: dict[str, int]  # status -> number of job runs left out
    mixed_params: list[str]  # params that differ between the runs of one row

    @property
    def name(self) -> str:
        return self.spec.study

    def footnote(self) -> str:
        total = sum(self.excluded.values())
        text = f"{total} run{'' if total == 1 else 's'} excluded: failed/unfinished"
        if total:
            text += " (" + ", ".join(f"{count} {status}" for status, count in sorted(self.excluded.items())) + ")"
        if self.mixed_params:
            text += f". Warning: rows average runs that differ in {', '.join(self.mixed_params)}; filter with --experiment or --parent-run-id"
        return text + "."

    def to_markdown(self) -> str:
        # disable_numparse: cells like "3.0" or "10" must print as written, not reformatted.
        body = self.display.to_markdown(index=False, disable_numparse=True)
        return f"### {self.spec.title}\n\n{body}\n\n{self.footnote()}\n"


def study_runs(runs: pd.DataFrame, study: str) -> pd.DataFrame:
    return runs[runs["study"] == study]


def excluded_counts(runs: pd.DataFrame, study: str) -> dict[str, int]:
    jobs = study_runs(runs, study)
    return {str(status): int(count) for status, count in jobs.loc[jobs["status"] != FINISHED, "status"].value_counts().items()}


def skip_message(runs: pd.DataFrame, study: str) -> str:
    total = sum(excluded_counts(runs, study).values())
    extra = f" ({total} excluded: failed/unfinished)" if total else ""
    return f"{study}: no finished job runs{extra}, skipped."


def iter_groups(table: Table) -> Iterator[tuple[str, pd.DataFrame]]:
    """(label, runs) per dataset (and FPS), in table order."""
    for key, runs in _sorted_groups(table.runs, table.group_columns):
        yield " ".join(f"{value} FPS" if column == "fps" else value for column, value in zip(table.group_columns, key)), runs


def _sorted_groups(frame: pd.DataFrame, columns: list[str]) -> list[tuple[tuple, pd.DataFrame]]:
    """groupby in table order (numeric where numeric); keys are tuples, one value per column."""
    return sorted(frame.groupby(columns), key=lambda item: tuple(sort_key(c)(v) for c, v in zip(columns, item[0])))


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


def _add_pretrain_gain(numeric: pd.DataFrame, group_columns: list[str], metrics: list[str]) -> None:
    """`<metric>_gain` on pretrain=true rows: mean(pretrain) - mean(finetune only) at the same K."""
    model = numeric[numeric["reference"] == ""]
    baseline = {tuple(row[[*group_columns, "k"]]): row for _, row in model[model["pretrain"] == "false"].iterrows()}
    for metric in metrics:
        numeric[f"{metric}_gain"] = math.nan
    for index, row in model[model["pretrain"] == "true"].iterrows():
        base = baseline.get(tuple(row[[*group_columns, "k"]]))
        if base is not None:
            for metric in metrics:
                numeric.loc[index, f"{metric}_gain"] = row[f"{metric}_mean"] - base[f"{metric}_mean"]


def _display(numeric: pd.DataFrame, spec: TableSpec, group_columns: list[str], metrics: list[str]) -> pd.DataFrame:
    rows = []
    for _, record in numeric.iterrows():
        reference = record["reference"]
        row = {GROUP_HEADERS[column]: record[column] for column in group_columns}
        for position, (key, header) in enumerate(zip(spec.keys, spec.headers)):
            value = record[key]
            if reference:
                row[header] = reference if position == 0 else ""
            else:
                row[header] = DISPLAY_VALUE.get(key, str)(value)
        row["n"] = "" if reference else str(int(record["n"]))
        for metric in metrics:
            info = metric_info(metric)
            gain = record.get(f"{metric}_gain", math.nan)
            # A reference row is a bound, not a result: its mean alone, as in the paper.
            std = math.nan if reference else record[f"{metric}_std"]
            row[info.header] = info.cell(record[f"{metric}_mean"], std, int(record[f"{metric}_n"]), gain)
        rows.append(row)
    return pd.DataFrame(rows)


def mixed_params(finished: pd.DataFrame, row_columns: list[str]) -> list[str]:
    """Contract params that vary inside a row: such a row would average different configurations."""
    candidates = [p for p in CONTRACT_PARAMS if p not in (*row_columns, *PER_SEED_PARAMS) and p in finished]
    counts = finished.groupby(row_columns)[candidates].nunique(dropna=False)
    return [p for p in candidates if (counts[p] > 1).any()]


def build_table(runs: pd.DataFrame, study: str) -> Table | None:
    """The table of one study from the tidy frame of job runs; None when it has no finished run."""
    spec = SPECS[study]
    jobs = study_runs(runs, study)
    finished = jobs[jobs["status"] == FINISHED].copy()
    if finished.empty:
        return None
    for column in ("dataset", "fps", *spec.keys):
        finished[column] = finished[column].fillna("").astype(str).map(NORMALIZE.get(column, str))
    group_columns = ["dataset"] + (["fps"] if finished["fps"].nunique() > 1 else [])
    metrics = result_metrics(finished, spec.null_audio)
    numeric = pd.DataFrame(_records(finished, spec, group_columns, metrics))
    stats = ["mean", "std", "n"]
    if spec.pretrain_gain:
        _add_pretrain_gain(numeric, group_columns, metrics)
        stats.append("gain")
    numeric = numeric[[*group_columns, "reference", *spec.keys, "n", *(f"{m}_{stat}" for m in metrics for stat in stats)]]
    numeric = numeric.astype({"n": "Int64"})
    return Table(
        spec=spec,
        runs=finished,
        group_columns=group_columns,
        metrics=metrics,
        numeric=numeric,
        display=_display(numeric, spec, group_columns, metrics),
        excluded=excluded_counts(runs, study),
        mixed_params=mixed_params(finished, [*group_columns, *spec.keys]),
    )
