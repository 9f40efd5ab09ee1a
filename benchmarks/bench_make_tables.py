"""How long make_tables takes on a store of 1,000 job runs (acceptance: tabulated in under 10 s).

    python benchmarks/bench_make_tables.py [--runs 1000] [--store DIR]

Logs --runs K-shot job runs (5 K x 2 paradigms x seeds) shaped like the jobs' runs: the contract
params plus 126 flattened `cfg.*` params (a real job logs 137 params), 20 tags and 8 metrics, into a
fresh SQLite store (in /dev/shm when there is one; logging is not timed), then times:
  load     runs.load_job_runs: one bulk mlflow.search_runs over all experiments
  tables   every table and the budget curve from the loaded frame (statistics included)
  total    analysis/make_tables.py's main() writing markdown, CSV and LaTeX (no figures)
  figures  the PNG of every table (reported apart: it is drawing, not tabulating)
  command  `python analysis/make_tables.py --format csv,md,tex` in a fresh process, as a user runs
           it: Python, pandas and MLflow imports and opening the store included
and, side by side, fetching the same runs one MlflowClient.get_run call each, the access
pattern bulk search replaces.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from analysis import make_tables, runs, tables  # noqa: E402
from asva.progress import configure_logging, progress  # noqa: E402
from asva.tracking.store import PARENT_TAG, ROLE_JOB, ROLE_SWEEP, ROLE_TAG, STUDY_TAG  # noqa: E402

KS = ("1", "5", "10", "20", "90")
CONFIG_PARAMS = {f"cfg.section{section}.key{key}": f"value{section * key}" for section in range(9) for key in range(14)}
METADATA_TAGS = {f"asva.meta.field{index}": f"value{index}" for index in range(17)}
METRICS = (
    "fvd_embedded",
    "ia_embedded",
    "it_embedded",
    "relsync_embedded",
    "alignsync_embedded",
    "relsync_embedded_openclass",
    "event_sync",
    "fd_pixel_synth",
)


def log_store(uri: str, artifacts: Path, count: int) -> None:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("kshot", artifact_location=artifacts.as_uri())
    parent = client.create_run(experiment, tags={STUDY_TAG: "kshot", ROLE_TAG: ROLE_SWEEP}).info.run_id
    generator = random.Random(0)
    for index in progress(range(count), desc="logging job runs", unit="run", log_every_seconds=10):
        k, pretrain, seed = KS[index % len(KS)], ("false", "true")[index // len(KS) % 2], index // (2 * len(KS))
        tags = {STUDY_TAG: "kshot", ROLE_TAG: ROLE_JOB, PARENT_TAG: parent} | METADATA_TAGS
        run = client.create_run(experiment, tags=tags)
        params = {
            "dataset": "synthetic",
            "fps": "6",
            "window_radius": "0.5",
            "audio_layers": "a:11",
            "k": k,
            "pretrain": pretrain,
        }
        params |= {
            "curation": "none",
            "finetune": "true",
            "seed": str(seed),
            "config_hash": f"h{index}",
            "cfg.model.name": "tiny",
        } | CONFIG_PARAMS
        metrics = [Metric(name, generator.uniform(50, 100), 0, 0) for name in METRICS]
        client.log_batch(
            run.info.run_id,
            metrics=metrics,
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.set_terminated(run.info.run_id)


def timed(function, *args):
    """(result, wall seconds); the call's CPU seconds (this process only) are appended to CPU_SECONDS."""
    started, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    CPU_SECONDS.append(time.process_time() - cpu)
    return result, time.perf_counter() - started


CPU_SECONDS: list[float] = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--store", type=Path, help="folder for the store (default: a temporary one)")
    args = parser.parse_args()
    configure_logging()
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=shm, prefix="asva-bench-") as temporary:
        root = args.store or Path(temporary)
        root.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{root}/mlflow.db"
        os.environ["MLFLOW_TRACKING_URI"] = uri
        if (root / "mlflow.db").exists():  # a --store logged by an earlier run: time it again
            logging_s = 0.0
        else:
            _, logging_s = timed(log_store, uri, root / "artifacts", args.runs)

        job_runs, load_s = timed(runs.load_job_runs)
        assert len(job_runs) == args.runs, len(job_runs)
        built, tables_s = timed(lambda: [tables.build_table(job_runs, name) for name in tables.SPECS])
        with contextlib.redirect_stdout(io.StringIO()):
            _, total_s = timed(make_tables.main, ["--out", str(root / "out"), "--format", "csv,md,tex"])
            _, figures_s = timed(
                make_tables.main, ["--out", str(root / "out"), "--format", "png", "--only", "table1,table3,budget"]
            )

        script = Path(__file__).resolve().parents[1] / "analysis" / "make_tables.py"
        command = [sys.executable, str(script), "--out", str(root / "out_cli"), "--format", "csv,md,tex"]
        _, command_s = timed(
            lambda: subprocess.run(
                command, env=os.environ | {"MLFLOW_TRACKING_URI": uri}, capture_output=True, check=True
            )
        )

        client = MlflowClient(tracking_uri=uri)
        _, per_run_s = timed(lambda: [client.get_run(run_id) for run_id in job_runs["run_id"]])

    rows = sum(len(table.display) for table in built if table is not None)
    _, load_cpu, tables_cpu, total_cpu, figures_cpu, _, _ = (
        CPU_SECONDS if len(CPU_SECONDS) == 7 else [math.nan, *CPU_SECONDS]
    )
    print(
        f"(wall seconds; CPU seconds of this process in brackets: on a busy machine wall >> CPU; load average {os.getloadavg()[0]:.1f})"
    )
    print(
        f"store: {args.runs} job runs, {len(METRICS)} metrics each (logging them took {logging_s:.1f} s, not counted)"
    )
    print(f"load (one bulk search_runs)     {load_s:6.2f} s  [{load_cpu:.2f}]")
    print(f"tables (statistics included)    {tables_s:6.2f} s  [{tables_cpu:.2f}]  ({rows} table rows)")
    print(f"make_tables total, csv+md+tex   {total_s:6.2f} s  [{total_cpu:.2f}]  {'<' if total_s < 10 else '>='} 10 s")
    print(f"figures (3 PNGs, apart)         {figures_s:6.2f} s  [{figures_cpu:.2f}]")
    print(f"command in a fresh process      {command_s:6.2f} s  (imports and opening the store included)")
    print(f"per-run get_run x {args.runs}         {per_run_s:6.2f} s  = {per_run_s / load_s:.1f}x the bulk load")


if __name__ == "__main__":
    main()
