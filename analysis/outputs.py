"""Writing a table in each output format: CSV (the numbers), markdown, LaTeX (booktabs), PNG, PDF."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

import pandas as pd
from matplotlib.figure import Figure

FORMATS = ("csv", "md", "tex", "png", "pdf")

# The cells' symbols in LaTeX (booktabs, and amssymb for \checkmark and the triangles, are all a
# paper needs).
LATEX_SYMBOLS = {
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "±": r"$\pm$",
    "✓": r"$\checkmark$",
    "✗": r"$\times$",
    "†": r"\textsuperscript{\dag}",
    "‡": r"\textsuperscript{\ddag}",
    "▲": r"\textsuperscript{$\blacktriangle$}",
    "▼": r"\textsuperscript{$\blacktriangledown$}",
    "–": "--",
}
# "(↓72.1)" after a mean is the paper's superscript: $^{\downarrow 72.1}$.
GAIN_CELL = re.compile(r" \((↑|↓|±)([0-9.]+)\)")
LATEX_SPECIAL = re.compile(r"([&%$#_{}])")


class Tabular(Protocol):
    name: str
    title: str
    numeric: pd.DataFrame
    display: pd.DataFrame

    def footnote(self) -> str: ...

    def to_markdown(self) -> str: ...


def latex_escape(text: str) -> str:
    text = LATEX_SPECIAL.sub(r"\\\1", text.replace("\\", r"\textbackslash{}"))
    return text.replace("~", r"\textasciitilde{}").replace("^", r"\textasciicircum{}")


def latex_symbols(text: str) -> str:
    text = GAIN_CELL.sub(lambda match: f"$^{{{LATEX_SYMBOLS[match.group(1)].strip('$')} {match.group(2)}}}$", text)
    for symbol, latex in LATEX_SYMBOLS.items():
        text = text.replace(symbol, latex)
    return text


def to_latex(table: Tabular) -> str:
    """A booktabs table environment: caption, tabular with top/mid/bottom rules, footnote."""
    body = (
        table.display.style.hide(axis="index")
        .format(escape="latex")
        .format_index(escape="latex", axis=1)
        .to_latex(
            hrules=True,
            column_format="l" * len(table.display.columns),
            caption=latex_escape(table.title),
            position_float="centering",
        )
    )
    footnote = f"\\par\\smallskip{{\\footnotesize {latex_escape(table.footnote())}}}\n"
    body = body.replace("\\end{table}", footnote + "\\end{table}")
    return latex_symbols(body)


def write_outputs(table: Tabular, figure: Figure | None, out: Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for extension in formats:
        path = out / f"{table.name}.{extension}"
        if extension == "csv":
            table.numeric.to_csv(path, index=False)
        elif extension == "md":
            path.write_text(table.to_markdown())
        elif extension == "tex":
            path.write_text(to_latex(table))
        elif figure is not None:
            figure.savefig(path, dpi=120)
        else:
            continue
        written.append(path)
    return written
