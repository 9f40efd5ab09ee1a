"""The printed form of a table: markdown pipe tables that fit the terminal, the marks of the paired
tests in the cells, and the footnote that explains them (the LaTeX: analysis/outputs.py)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from analysis.metrics import STAND_IN
from analysis.stats import ALPHA

if TYPE_CHECKING:  # for annotations only: tables.py imports this module to build a Table
    from analysis.tables import Table

TERMINAL_COLUMNS = 120  # the width every printed table fits
NOT_SIGNIFICANT = "†"
NOT_TESTED = "‡"
HIGHER_THAN_ABOVE = "▲"  # significantly higher than the row above (Fig. 4a, 4b)
LOWER_THAN_ABOVE = "▼"


@dataclass(frozen=True)
class Section:
    """One printed table: the rows of one dataset (and FPS), the metrics of one family."""

    heading: str
    frame: pd.DataFrame  # formatted cells: the key columns (n among them unless the heading says it), the metrics
    key_columns: list[str]  # repeated in every part when the metrics are split to fit the terminal


def gain_mark(p_value: float, pairs: float) -> str:
    """ "" when significant at 0.05, † when tested and not, ‡ when fewer than 2 pairs to test."""
    if pd.isna(pairs) or pairs < 2:
        return NOT_TESTED
    return "" if p_value < ALPHA else NOT_SIGNIFICANT  # a nan p-value (no variation) is not significant


def above_mark(difference: float, p_value: float, pairs: float) -> str:
    """▲ or ▼ when the row differs from the row above at 0.05; "" when not, or when untested
    (a row without a row above, fewer than 2 shared seeds)."""
    if pd.isna(pairs) or pairs < 2 or not p_value < ALPHA:
        return ""
    return HIGHER_THAN_ABOVE if difference > 0 else LOWER_THAN_ABOVE


def footnote_sentences(table: Table) -> list[str]:
    """What the cells cannot say: the runs left out, what the marks and stand-in columns mean, and
    rows that average different configurations."""
    total = sum(table.excluded.values())
    runs = f"mean ± std over seeds (n runs); {total} run{'' if total == 1 else 's'} excluded: failed/unfinished"
    if total:
        runs += " (" + ", ".join(f"{count} {status}" for status, count in sorted(table.excluded.items())) + ")"
    sentences = [runs + "."]
    if table.spec.gain:
        gain = table.spec.gain
        sentences.append(
            f"(↑/↓x): {gain.label} gain, mean({gain.param}={gain.treated}) - mean({gain.param}={gain.baseline});"
            f" {NOT_SIGNIFICANT} not significant at {ALPHA} (paired t-test over the seeds both rows share),"
            f" {NOT_TESTED} not tested (fewer than 2 shared seeds)."
        )
    if table.spec.versus_above:
        sentences.append(
            f"{HIGHER_THAN_ABOVE}/{LOWER_THAN_ABOVE}: higher/lower than the row above, significant at {ALPHA}"
            " (paired t-test over the seeds both rows share; rows sharing fewer than 2 seeds are not tested)."
        )
    if any(STAND_IN in str(column) for column in table.display.columns):
        sentences.append(
            f"{STAND_IN}: not the paper's metric but one of this project's stand-ins (a metric logged with the suffix"
            " _embedded, FD-pixel, EventSync)."
        )
    if table.mixed_params:
        sentences.append(
            f"Warning: rows average runs that differ in {', '.join(table.mixed_params)}; filter with --experiment or --parent-run-id."
        )
    return sentences


def printed_tables(table: Table) -> str:
    """The printed tables under the title: per dataset and metric family, each split into parts
    when wider than the terminal; the footnote wrapped to the terminal too."""
    blocks = [f"### {table.spec.title}"]
    for section in table.sections:
        for part, frame in enumerate(fit_to_width(section.frame, section.key_columns)):
            blocks.append(f"#### {section.heading}{' (continued)' if part else ''}\n\n{markdown_table(frame)}")
    blocks.append("\n".join(textwrap.fill(sentence, TERMINAL_COLUMNS) for sentence in footnote_sentences(table)))
    return "\n\n".join(blocks) + "\n"


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table, left-aligned, cells printed as written ("3.0" stays "3.0"), each column as
    wide as its widest cell or header: tabulate pads headers by 2 more, which costs a 6-metric
    table the room it has in 120 columns."""
    rows = [[str(column) for column in frame.columns], *frame.astype(str).values.tolist()]
    widths = [max(len(row[position]) for row in rows) for position in range(len(rows[0]))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + " |"

    rule = "|" + "|".join(":" + "-" * (width + 1) for width in widths) + "|"
    return "\n".join([line(rows[0]), rule, *map(line, rows[1:])])


def printed_width(frame: pd.DataFrame) -> int:
    return max(len(line) for line in markdown_table(frame).splitlines())


def fit_to_width(frame: pd.DataFrame, key_columns: list[str], width: int = TERMINAL_COLUMNS) -> list[pd.DataFrame]:
    """The frame in parts that each print within `width` columns: the key columns in every part,
    then as many of the other columns, in order, as fit (at least one, however wide)."""
    parts: list[list[str]] = [[]]
    for column in frame.columns.drop(key_columns):
        if parts[-1] and printed_width(frame[[*key_columns, *parts[-1], column]]) > width:
            parts.append([])
        parts[-1].append(column)
    return [frame[[*key_columns, *part]] for part in parts]
