"""How each logged metric is named, ordered and grouped in the tables and figures.

A metric's name as logged says what it is (suffixes: asva/tracking/store.py): one of the paper's
metrics, its stand-in (`<m>_embedded`), its score on open-class clips (`<m>_openclass`), its
null-audio control (`<m>_null_audio`) or a reference row's value (`<m>_ref_groundtruth`,
`<m>_ref_static`). From the name this registry derives the full name (figures), the short column
name (tables), the direction and the precision, the paper's order, and the printed table a metric
goes to.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass

import pandas as pd

from analysis.runs import metric_columns
from asva.tracking.store import (
    BOOKKEEPING_METRICS,
    EMBEDDED_SUFFIX,
    GROUNDTRUTH_SUFFIX,
    NULL_AUDIO_SUFFIX,
    OPENCLASS_SUFFIX,
    PAPER_METRICS,
    STATIC_SUFFIX,
)

# Metrics listed first, in the paper's column order, then their embedded stand-ins.
METRIC_ORDER = (*PAPER_METRICS, "fd_pixel_synth", "event_sync")
# The columns of the paper's Tables 1-3 and Fig. 4, and EventSync, the embedded default's own
# synchronization score: a printed table's main columns. (Metric-name suffixes: asva/tracking/store.py.)
PAPER_COLUMNS = (*PAPER_METRICS, "event_sync")
# Printed tables of one dataset, in order: a family's metrics share a table. The main, open-class
# and null-audio tables hold the paper's columns (as scored, on open-class clips, without audio),
# "other" every other metric, open-class and null-audio variants included.
OTHER = "other"
FAMILY_HEADINGS = {
    "": "",
    OPENCLASS_SUFFIX: "open-class clips (classes only the pretraining pool holds)",
    NULL_AUDIO_SUFFIX: "null-audio control (the same models sampled without audio)",
    OTHER: "other metrics",
}
STAND_IN = "*"  # after a column name: not the paper's metric but a stand-in (`_embedded`, FD-pixel, EventSync)
# Reference rows (metrics logged with these suffixes) and their labels: the bounds the models lie between.
REFERENCES = {GROUNDTRUTH_SUFFIX: "Groundtruth", STATIC_SUFFIX: "Static"}
MISSING = "–"  # a cell without a value


@dataclass(frozen=True)
class MetricInfo:
    name: str
    display: str  # the full name, for figures: "RelSync (embedded), open-class"
    label: str  # the table column's name, short: "RelSync*, open-class" (STAND_IN explained in the footnote)
    higher_is_better: bool | None  # None: a control or an unknown metric, shown without arrow
    decimals: int

    @property
    def arrow(self) -> str:
        return {True: " ↑", False: " ↓", None: ""}[self.higher_is_better]

    @property
    def header(self) -> str:
        """The full name with its direction: figure panels and the budget table."""
        return f"{self.display}{self.arrow}"

    @property
    def column(self) -> str:
        """The short name with its direction: table columns."""
        return f"{self.label}{self.arrow}"

    def number(self, value: float) -> str:
        return MISSING if pd.isna(value) else f"{value:.{self.decimals}f}"

    def cell(self, mean: float, std: float, n: int, gain: float = math.nan, mark: str = "") -> str:
        """`mean ± std` (just the mean for a single run), a gain as `(↑x)`, then the mark."""
        if n == 0 or pd.isna(mean):
            return MISSING
        text = self.number(mean) if n < 2 or pd.isna(std) else f"{self.number(mean)} ± {self.number(std)}"
        if not pd.isna(gain):
            rounded = round(gain, self.decimals)
            arrow = "↑" if rounded > 0 else "↓" if rounded < 0 else "±"
            text += f" ({arrow}{self.number(abs(gain))})"
        return text + mark


# Stand-ins are never shown under a paper metric's bare name: "(synthetic)" or "(embedded)" in
# full names, STAND_IN in column names.
KNOWN_METRICS = {
    info.name: info
    for info in (
        MetricInfo("fvd", "FVD", "FVD", False, 1),
        # The stand-in's FVD is on a scale of 1, not of 100 (docs/metrics.md: 0.02 to 1.47).
        MetricInfo("fvd_embedded", "FVD (embedded)", f"FVD{STAND_IN}", False, 3),
        MetricInfo("ia", "IA", "IA", True, 2),
        MetricInfo("it", "IT", "IT", True, 2),
        MetricInfo("relsync", "RelSync", "RelSync", True, 2),
        MetricInfo("alignsync", "AlignSync", "AlignSync", True, 2),
        # The project's small classifier on real data (docs/metrics.md): a table of its own, not the paper's column.
        MetricInfo("relsync_asva", "RelSync (small classifier)", "RelSync-asva", True, 2),
        MetricInfo("alignsync_asva", "AlignSync (small classifier)", "AlignSync-asva", True, 2),
        MetricInfo("fd_pixel_synth", "FD-pixel (synthetic)", f"FD-pixel{STAND_IN}", False, 1),
        MetricInfo("event_sync", "EventSync (synthetic)", f"EventSync{STAND_IN}", True, 2),
    )
}


def split_variant(name: str) -> tuple[str, str]:
    """`relsync_openclass` -> (`relsync`, `_openclass`); a metric without variant -> (name, "")."""
    for suffix in (NULL_AUDIO_SUFFIX, OPENCLASS_SUFFIX):
        if name.endswith(suffix):
            return name.removesuffix(suffix), suffix
    return name, ""


def metric_family(name: str) -> str:
    """The printed table a metric goes to: its variant ("", open-class, null audio) when it is one
    of the paper's columns (or its stand-in), else OTHER."""
    base, variant = split_variant(name)
    return variant if base.removesuffix(EMBEDDED_SUFFIX) in PAPER_COLUMNS else OTHER


def metric_info(name: str) -> MetricInfo:
    """Registry entry of a metric; Fréchet distances (fvd, fd_*) are lower-better with 1 decimal.

    Variants keep their base metric's direction and precision: `<m>_embedded` is shown as
    "<M> (embedded)" ("<M>*" in a column), `<m>_openclass` as "<M>, open-class"; a null-audio
    control has no direction.
    """
    if name in KNOWN_METRICS:
        return KNOWN_METRICS[name]
    base_name, variant = split_variant(name)
    if variant:
        base = metric_info(base_name)
        text = {OPENCLASS_SUFFIX: ", open-class", NULL_AUDIO_SUFFIX: ", null audio"}[variant]
        direction = None if variant == NULL_AUDIO_SUFFIX else base.higher_is_better
        return MetricInfo(name, base.display + text, base.label + text, direction, base.decimals)
    if name.endswith(EMBEDDED_SUFFIX) and name.removesuffix(EMBEDDED_SUFFIX) in KNOWN_METRICS:
        base = KNOWN_METRICS[name.removesuffix(EMBEDDED_SUFFIX)]
        return MetricInfo(
            name, f"{base.display} (embedded)", f"{base.label}{STAND_IN}", base.higher_is_better, base.decimals
        )
    if name.startswith(("fvd", "fd_")):
        return MetricInfo(name, name, name, False, 1)
    return MetricInfo(name, name, name, None, 2)


def metric_sort_key(name: str) -> tuple[int, str, bool, int]:
    """Paper order (a paper metric, then its embedded stand-in), then others alphabetically; the
    open-class score and the null-audio control of a metric right after it."""
    name, variant = split_variant(name)
    core = name.removesuffix(EMBEDDED_SUFFIX)
    rank = METRIC_ORDER.index(core) if core in METRIC_ORDER else len(METRIC_ORDER)
    return rank, core, name != core, ("", OPENCLASS_SUFFIX, NULL_AUDIO_SUFFIX).index(variant)


def by_family(metrics: list[str]) -> dict[str, list[str]]:
    """The metrics of each printed table (FAMILY_HEADINGS order, empty families left out), each
    in paper order: the order of figure panels too, the paper's key metrics first."""
    families = {
        family: [m for m in sorted(metrics, key=metric_sort_key) if metric_family(m) == family]
        for family in FAMILY_HEADINGS
    }
    return {family: members for family, members in families.items() if members}


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
