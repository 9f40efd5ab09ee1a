"""The paper's tables and figures from MLflow: Table 1, 2, 3, the annotation budget, Fig. 4a, 4b.

    python analysis/make_tables.py [--only NAME[,NAME]] [--format csv,md,tex,png,pdf] [--out DIR]
                                   [--metrics NAME[,NAME]] [--study NAME] [--dataset NAME]
                                   [--experiment NAME] [--parent-run-id ID]

Prints each table as markdown, shaped like the paper's and within 120 columns (the paper's columns
per dataset; open-class, null-audio and other metrics in tables of their own), and writes
<name>.csv (every metric, numbers and statistics), .md (as printed), .tex (booktabs, every metric)
and the figure as .png and .pdf to --out. Reads the store named by MLFLOW_TRACKING_URI, else the
project's SQLite store. Progress goes to the log (stderr).
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
import time
from pathlib import Path

if not __package__:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import budget, metrics, outputs, plots, render, runs, tables  # noqa: E402
from asva.progress import configure_logging, progress  # noqa: E402
from asva.tracking.store import ROLE_JOB, ROLE_TAG, STUDY_TAG, tracking_uri  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "output"
BUDGET = "budget"
# Output order: the paper's, the budget right after the Table 3 it is computed from.
NAMES = ("table1", "table2", "table3", BUDGET, "fig4a", "fig4b")

log = logging.getLogger("asva.analysis")


def comma_list(choices: tuple[str, ...]):
    def parse(text: str) -> tuple[str, ...]:
        values = tuple(value.strip() for value in text.split(",") if value.strip())
        unknown = [value for value in values if value not in choices]
        if unknown or not values:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(choices)} (comma-separated)")
        return values

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--only", type=comma_list(NAMES), default=NAMES, help=f"build only these ({', '.join(NAMES)})")
    parser.add_argument(
        "--format",
        type=comma_list(outputs.FORMATS),
        default=outputs.FORMATS,
        help=f"files to write ({', '.join(outputs.FORMATS)})",
    )
    parser.add_argument(
        "--metrics",
        type=lambda text: tuple(value.strip() for value in text.split(",") if value.strip()),
        help="only these metric columns, names as logged, wildcards allowed (e.g. 'relsync_embedded,*_openclass')",
    )
    parser.add_argument("--study", help="only runs with this asva.study tag")
    parser.add_argument("--dataset", help="only runs with this `dataset` param")
    parser.add_argument("--experiment", help="only runs of the MLflow experiment of this name")
    parser.add_argument("--parent-run-id", help="only the jobs of this sweep (parent) run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = parse_args(argv)
    started = time.perf_counter()
    job_runs = runs.load_job_runs(
        study=args.study, dataset=args.dataset, experiment=args.experiment, parent_run_id=args.parent_run_id
    )
    log.info("loaded %d job runs from %s in %.1f s", len(job_runs), tracking_uri(), time.perf_counter() - started)
    if job_runs.empty:
        filters = {
            name: value
            for name, value in vars(args).items()
            if name not in ("out", "only", "format", "metrics") and value is not None
        }
        where = f" matching {filters}" if filters else ""
        print(f"No job runs{where} in {tracking_uri()}: nothing to tabulate.")
        contract = f"A job run is tagged {STUDY_TAG}, and either {ROLE_TAG}={ROLE_JOB} or no {ROLE_TAG} and the params {', '.join(runs.REQUIRED_PARAMS)}."
        print(textwrap.fill(contract, render.TERMINAL_COLUMNS))
        return 0
    if args.metrics:
        logged = metrics.result_metrics(job_runs, null_audio=True)
        unmatched = [pattern for pattern in args.metrics if not metrics.select_metrics(logged, (pattern,))]
        if unmatched:
            print(
                f"error: --metrics: {', '.join(unmatched)} matches no logged metric; logged: {', '.join(logged)}",
                file=sys.stderr,
            )
            return 2
    built: dict[str, tables.Table | None] = {}
    drawing = bool({"png", "pdf"} & set(args.format))  # figures take longer than tables: only when asked
    for name in progress(args.only, desc="building tables", unit="table"):
        if name == BUDGET:
            table3 = built["table3"] if "table3" in built else tables.build_table(job_runs, "table3", args.metrics)
            result = budget.budget_curve(table3) if table3 is not None else None
            if result is None:
                print(f"{BUDGET}: no metric with both paradigms at a numeric K in Table 3, skipped.")
                continue
            output, figure = result, budget.plot_budget(result) if drawing else None
        else:
            table = built[name] = tables.build_table(job_runs, name, args.metrics)
            if table is None:
                print(tables.skip_message(job_runs, name))
                continue
            if not table.metrics:
                print(f"{name}: no metric of it matches --metrics, skipped.")
                continue
            output, figure = table, plots.plot_table(table) if drawing else None
        print(output.to_markdown())
        written = outputs.write_outputs(output, figure, args.out, args.format)
        print(f"wrote {', '.join(path.name for path in written)} to {args.out}\n")
    others = sorted(set(job_runs["study"].dropna()) - {spec.study for spec in tables.SPECS.values()})
    if others:
        print(f"Studies without a layout of their own (in Table 1 only): {', '.join(others)}.")
    log.info("done in %.1f s", time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
