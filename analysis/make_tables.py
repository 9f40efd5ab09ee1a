"""Tables and figures of the ablation studies (Fig. 4a, Fig. 4b, Table 3) from the MLflow job runs.

    python analysis/make_tables.py [--out DIR] [--study NAME] [--dataset NAME]
                                   [--experiment NAME] [--parent-run-id ID]

Prints each table as markdown and writes <study>.csv (numbers), <study>.md and <study>.png to
--out. Reads the store named by MLFLOW_TRACKING_URI, else the project's SQLite store.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if not __package__:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import plots, runs, tables  # noqa: E402
from asva.tracking.store import ROLE_JOB, ROLE_TAG, tracking_uri  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "output"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--study", choices=sorted(tables.SPECS), help="only this study")
    parser.add_argument("--dataset", help="only runs with this `dataset` param")
    parser.add_argument("--experiment", help="only runs of the MLflow experiment of this name")
    parser.add_argument("--parent-run-id", help="only the jobs of this sweep (parent) run")
    return parser.parse_args(argv)


def write_outputs(table: tables.Table, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, png_path = (out / f"{table.name}.{ext}" for ext in ("csv", "md", "png"))
    table.numeric.to_csv(csv_path, index=False)
    md_path.write_text(table.to_markdown())
    plots.plot_table(table).savefig(png_path, dpi=120)
    return [csv_path, md_path, png_path]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    job_runs = runs.load_job_runs(study=args.study, dataset=args.dataset, experiment=args.experiment, parent_run_id=args.parent_run_id)
    if job_runs.empty:
        filters = {name: value for name, value in vars(args).items() if name != "out" and value is not None}
        where = f" matching {filters}" if filters else ""
        print(f"No job runs (tag {ROLE_TAG}={ROLE_JOB}){where} in {tracking_uri()}: nothing to tabulate.")
        return 0
    for study in [args.study] if args.study else list(tables.SPECS):
        table = tables.build_table(job_runs, study)
        if table is None:
            print(tables.skip_message(job_runs, study))
            continue
        print(table.to_markdown())
        written = write_outputs(table, args.out)
        print(f"wrote {', '.join(str(path) for path in written)}\n")
    others = sorted(set(job_runs["study"].dropna()) - set(tables.SPECS))
    if others:
        print(f"No table layout for studies {', '.join(others)}: skipped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
