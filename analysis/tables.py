"""The paper's tables from the tidy job-run frame (analysis/runs.py): pure pandas, no MLflow.

Each table has one row per configuration (its key params), averaged over seeds, under each dataset
(and FPS when several), with the reference rows first. Only FINISHED runs are averaged: a failed or
unfinished run has partial or no metrics and would bias the means, so it is counted in the
footnote instead. Tables with a gain (Table 2: finetuning, Table 3: pretraining) compare each
treated row with its baseline row seed by seed (analysis/stats.py).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pandas as pd

from analysis.runs import FINISHED, MODEL_NAME, metric_columns
from analysis.stats import UNTESTED, PairedGain, paired_gain
from asva.tracking.store import BOOKKEEPING_METRICS, CONTRACT_PARAMS

# Metrics listed first, in the paper's column order, then their embedded stand-ins.
METRIC_ORDER = ("fvd", "ia", "it", "relsync", "alignsync", "fd_pixel_synth", "event_sync")
NULL_AUDIO_SUFFIX = "_null_audio"
OPENCLASS_SUFFIX = "_openclass"  # evaluated on classes the benchmark lacks (pretraining pool only)
EMBEDDED_SUFFIX = "_embedded"  # the embedded default's stand-in of a paper metric
NOT_SIGNIFICANT = "†"
NOT_TESTED = "‡"
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

    def cell(self, mean: float, std: float, n: int, gain: float = math.nan, mark: str = "") -> str:
        """`mean ± std` (just the mean for a single run) and a gain as `(↑x)`, then its mark."""
        if n == 0 or pd.isna(mean):
            return MISSING
        text = self.number(mean) if n < 2 or pd.isna(std) else f"{self.number(mean)} ± {self.number(std)}"
        if not pd.isna(gain):
            rounded = round(gain, self.decimals)
            arrow = "↑" if rounded > 0 else "↓" if rounded < 0 else "±"
            text += f" ({arrow}{self.number(abs(gain))}){mark}"
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
    """Registry entry of a metric; Fréchet distances (fvd, fd_*) are lower-better with 1 decimal.

    Variants keep their base metric's direction and precision: `<m>_embedded` is shown as
    "<M> (embedded)", `<m>_openclass` as "<M>, open-class"; a null-audio control has no direction.
    """
    if name in KNOWN_METRICS:
        return KNOWN_METRICS[name]
    if name.endswith(NULL_AUDIO_SUFFIX):
        base = metric_info(name.removesuffix(NULL_AUDIO_SUFFIX))
        return MetricInfo(name, f"{base.display}, null audio", None, base.decimals)
    if name.endswith(OPENCLASS_SUFFIX):
        base = metric_info(name.removesuffix(OPENCLASS_SUFFIX))
        return MetricInfo(name, f"{base.display}, open-class", base.higher_is_better, base.decimals)
    if name.endswith(EMBEDDED_SUFFIX) and name.removesuffix(EMBEDDED_SUFFIX) in KNOWN_METRICS:
        base = KNOWN_METRICS[name.removesuffix(EMBEDDED_SUFFIX)]
        return MetricInfo(name, f"{base.display} (embedded)", base.higher_is_better, base.decimals)
    if name.startswith(("fvd", "fd_")):
        return MetricInfo(name, name, False, 1)
    return MetricInfo(name, name, None, 2)


def metric_sort_key(name: str) -> tuple[int, str, bool, int]:
    """Paper order (a paper metric, then its embedded stand-in), then others alphabetically; the
    open-class score and the null-audio control of a metric right after it."""
    variant = 0
    if name.endswith(NULL_AUDIO_SUFFIX):
        name, variant = name.removesuffix(NULL_AUDIO_SUFFIX), 2
    elif name.endswith(OPENCLASS_SUFFIX):
        name, variant = name.removesuffix(OPENCLASS_SUFFIX), 1
    core = name.removesuffix(EMBEDDED_SUFFIX)
    rank = METRIC_ORDER.index(core) if core in METRIC_ORDER else len(METRIC_ORDER)
    return rank, core, name != core, variant


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


def select_metrics(metrics: list[str], patterns: tuple[str, ...] | None) -> list[str]:
    """The metrics matching any of `patterns` (names as logged, shell wildcards allowed:
    `relsync_embedded`, `*_openclass`); all of them without patterns."""
    if not patterns:
        return metrics
    return [name for name in metrics if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)]


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
MODEL_PARAMS = {"audio_layers": "layers", "window_radius": "r", "k": "K", "pretrain": "pretrain", "curation": "curation", "finetune": "finetune"}


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


PRETRAINING = Gain("pretrain", "false", "true", "pretraining")
FINETUNING = Gain("finetune", "false", "true", "finetuning")
SPECS = {
    spec.name: spec
    for spec in (
        TableSpec("table1", None, "Models compared on every metric (Table 1)", ("model", "fps"), ("Model", "FPS"), False),
        TableSpec("table2", "curation", "Curated pretraining data and finetuning (Table 2)", ("curation", "finetune"), ("Curation", "Finetune"), False, FINETUNING),
        TableSpec("table3", "kshot", "K-shot finetuning, with and without pretraining (Table 3)", ("k", "pretrain"), ("K", "Pretrain"), False, PRETRAINING),
        TableSpec("fig4a", "encoder_layers", "Audio multi-feature conditioning (Fig. 4a)", ("audio_layers",), ("Audio layers",), True),
        TableSpec("fig4b", "window_radius", "Audio window radius (Fig. 4b)", ("window_radius",), ("Radius (1/FPS)",), True),
    )
}


@dataclass
class Table:
    spec: TableSpec
    runs: pd.DataFrame  # the FINISHED job runs averaged here, key params normalized
    group_columns: list[str]
    metrics: list[str]
    numeric: pd.DataFrame  # per row: mean/std/n per metric (and gain and its test): the CSV
    display: pd.DataFrame  # formatted cells: the markdown
    excluded: dict[str, int]  # status -> number of job runs left out
    mixed_params: list[str]  # params that differ between the runs of one row

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def title(self) -> str:
        return self.spec.title

    def footnote(self) -> str:
        total = sum(self.excluded.values())
        text = f"mean ± std over seeds (n runs); {total} run{'' if total == 1 else 's'} excluded: failed/unfinished"
        if total:
            text += " (" + ", ".join(f"{count} {status}" for status, count in sorted(self.excluded.items())) + ")"
        if self.spec.gain:
            gain = self.spec.gain
            text += (
                f". ({'↑/↓'}x): {gain.label} gain, mean({gain.param}={gain.treated}) - mean({gain.param}={gain.baseline});"
                f" {NOT_SIGNIFICANT} not significant at 0.05 (paired t-test over the seeds both rows share),"
                f" {NOT_TESTED} not tested (fewer than 2 shared seeds)"
            )
        if self.mixed_params:
            text += f". Warning: rows average runs that differ in {', '.join(self.mixed_params)}; filter with --experiment or --parent-run-id"
        return text + "."

    def to_markdown(self) -> str:
        # disable_numparse: cells like "3.0" or "10" must print as written, not reformatted.
        body = self.display.to_markdown(index=False, disable_numparse=True)
        return f"### {self.spec.title}\n\n{body}\n\n{self.footnote()}\n"


def study_runs(runs: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    return runs if spec.study is None else runs[runs["study"] == spec.study]


def excluded_counts(runs: pd.DataFrame, spec: TableSpec) -> dict[str, int]:
    jobs = study_runs(runs, spec)
    return {str(status): int(count) for status, count in jobs.loc[jobs["status"] != FINISHED, "status"].value_counts().items()}


def skip_message(runs: pd.DataFrame, name: str) -> str:
    spec = SPECS[name]
    total = sum(excluded_counts(runs, spec).values())
    extra = f" ({total} excluded: failed/unfinished)" if total else ""
    source = f"study {spec.study}" if spec.study else "any study"
    return f"{name}: no finished job runs of {source}{extra}, skipped."


def iter_groups(table: Table) -> Iterator[tuple[str, pd.DataFrame]]:
    """(label, runs) per dataset (and FPS), in table order."""
    for key, runs in _sorted_groups(table.runs, table.group_columns):
        yield " ".join(f"{value} FPS" if column == "fps" else value for column, value in zip(table.group_columns, key)), runs


def _sorted_groups(frame: pd.DataFrame, columns: list[str]) -> list[tuple[tuple, pd.DataFrame]]:
    """groupby in table order (numeric where numeric); keys are tuples, one value per column."""
    orders = {column: sort_key(column) for column in columns}
    if "model" in columns:  # a model's place is that of its params, not of its label's letters
        params = [p for p in MODEL_PARAMS if p in frame]
        rank = {
            label: tuple(sort_key(p)(v) for p, v in zip(params, values))
            for label, values in frame.groupby("model")[params].first().apply(tuple, axis=1).items()
        } if params else {}
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


GAIN_STATS = ("gain", "gain_p", "gain_ci_low", "gain_ci_high", "gain_pairs")


def _add_gain(numeric: pd.DataFrame, finished: pd.DataFrame, spec: TableSpec, group_columns: list[str], metrics: list[str]) -> None:
    """Per treated row and metric: the gain mean(treated) - mean(baseline) over the row with the
    same other keys, and its paired test over the seeds both rows have (`<metric>_gain*`)."""
    assert spec.gain is not None
    gain = spec.gain
    columns = [*group_columns, *spec.keys]
    seed_means = {key: runs.groupby("seed")[metrics].mean() for key, runs in finished.groupby(columns)}
    model = numeric[numeric["reference"] == ""]
    rows = {tuple(row[columns]): row for _, row in model.iterrows()}
    position = columns.index(gain.param)
    results: dict[str, list[float]] = {f"{metric}_{stat}": [] for metric in metrics for stat in GAIN_STATS}
    annotated = []
    for index, row in model[model[gain.param] == gain.treated].iterrows():
        key = tuple(row[columns])
        baseline_key = (*key[:position], gain.baseline, *key[position + 1 :])
        base = rows.get(baseline_key)
        if base is None:
            continue
        annotated.append(index)
        paired = seed_means[key].join(seed_means[baseline_key], how="inner", rsuffix="\0baseline")
        for metric in metrics:
            both = paired[[metric, f"{metric}\0baseline"]].dropna()
            test: PairedGain = paired_gain(both.iloc[:, 0].to_numpy(), both.iloc[:, 1].to_numpy()) if len(both) else UNTESTED
            values = (row[f"{metric}_mean"] - base[f"{metric}_mean"], test.p_value, test.ci_low, test.ci_high, test.pairs)
            for stat, value in zip(GAIN_STATS, values):
                results[f"{metric}_{stat}"].append(value)
    for column, values in results.items():
        numeric[column] = pd.Series(values, index=annotated, dtype=float)


def gain_mark(p_value: float, pairs: float) -> str:
    """"" when significant at 0.05, † when tested and not, ‡ when fewer than 2 pairs to test."""
    if pd.isna(pairs) or pairs < 2:
        return NOT_TESTED
    return "" if p_value < 0.05 else NOT_SIGNIFICANT  # a nan p-value (no variation) is not significant


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
            mark = "" if pd.isna(gain) else gain_mark(record[f"{metric}_gain_p"], record[f"{metric}_gain_pairs"])
            # A reference row is a bound, not a result: its mean alone, as in the paper.
            std = math.nan if reference else record[f"{metric}_std"]
            row[info.header] = info.cell(record[f"{metric}_mean"], std, int(record[f"{metric}_n"]), gain, mark)
        rows.append(row)
    return pd.DataFrame(rows)


def mixed_params(finished: pd.DataFrame, row_columns: list[str]) -> list[str]:
    """Contract params that vary inside a row: such a row would average different configurations."""
    candidates = [p for p in CONTRACT_PARAMS if p not in (*row_columns, *PER_SEED_PARAMS) and p in finished]
    counts = finished.groupby(row_columns)[candidates].nunique(dropna=False)
    return [p for p in candidates if (counts[p] > 1).any()]


def model_labels(finished: pd.DataFrame) -> pd.Series:
    """Table 1's model names: the model, then the params in which the compared models differ."""
    names = finished[MODEL_NAME].fillna("model").astype(str) if MODEL_NAME in finished else pd.Series("model", index=finished.index)
    varying = [p for p in MODEL_PARAMS if p in finished and finished[p].nunique(dropna=False) > 1]
    if not varying:
        return names
    details = [f"{MODEL_PARAMS[p]}=" + finished[p].astype(str) for p in varying]
    return names + " (" + pd.concat(details, axis=1).agg(", ".join, axis=1) + ")"


def build_table(runs: pd.DataFrame, name: str, metric_patterns: tuple[str, ...] | None = None) -> Table | None:
    """One table from the tidy frame of job runs, with the metrics matching `metric_patterns` (all
    without); None when it has no finished run."""
    spec = SPECS[name]
    jobs = study_runs(runs, spec)
    finished = jobs[jobs["status"] == FINISHED].copy()
    if finished.empty:
        return None
    for column in ("dataset", "fps", *MODEL_PARAMS):
        if column in finished:
            finished[column] = finished[column].fillna("").astype(str).map(NORMALIZE.get(column, str))
    if "model" in spec.keys:
        finished["model"] = model_labels(finished)
    group_columns = ["dataset"] + (["fps"] if "fps" not in spec.keys and finished["fps"].nunique() > 1 else [])
    metrics = select_metrics(result_metrics(finished, spec.null_audio), metric_patterns)
    numeric = pd.DataFrame(_records(finished, spec, group_columns, metrics))
    stats = ["mean", "std", "n"]
    if spec.gain:
        _add_gain(numeric, finished, spec, group_columns, metrics)
        stats.extend(GAIN_STATS)
    numeric = numeric[[*group_columns, "reference", *spec.keys, "n", *(f"{m}_{stat}" for m in metrics for stat in stats)]]
    numeric = numeric.astype({"n": "Int64"})
    return Table(
        spec=spec,
        runs=finished,
        group_columns=group_columns,
        metrics=metrics,
        numeric=numeric,
        display=_display(numeric, spec, group_columns, metrics),
        excluded=excluded_counts(runs, spec),
        mixed_params=mixed_params(finished, [*group_columns, *spec.keys]),
    )
