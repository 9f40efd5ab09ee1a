"""Job runs from MLflow as a tidy DataFrame: one row per job run, the input of every table.

Runs are selected by the tracking contract (asva/tracking/store.py, README "Tracking"), never by
experiment or run names, and fetched with one bulk search over all experiments, because a store
holds thousands of runs and one query per run would take minutes.

A job run is a run tagged `asva.study` that is either tagged `asva.role=job` (this project's
jobs) or has no `asva.role` and every param of REQUIRED_PARAMS (runs another program logged, e.g.
a paper's published table typed in as runs). The other runs of a study carry roles of their own
(sweep parents, pretrainings, curations, evaluations) and are never rows of a table.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
import pandas as pd

from asva.tracking.store import CONTRACT_PARAMS, PARENT_TAG, ROLE_JOB, ROLE_TAG, STUDY_TAG, tracking_uri

FINISHED = "FINISHED"
# What a run without `asva.role` needs to be a job: the params that tables group rows by and pair
# seeds by. `config_hash` identifies a configuration for this project's resume logic only.
REQUIRED_PARAMS = tuple(param for param in CONTRACT_PARAMS if param != "config_hash")
# The model config's name (flattened config param `cfg.model.name`): Table 1's rows.
MODEL_NAME = "model_name"
MODEL_NAME_PARAM = "cfg.model.name"

# Columns of the tidy frame that are neither contract params nor metrics.
RUN_COLUMNS = (
    "run_id",
    "run_name",
    "experiment_id",
    "experiment",
    "status",
    "study",
    "role",
    "parent_run_id",
    "start_time",
    MODEL_NAME,
)

log = logging.getLogger("asva.analysis")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite:// tracking URI, None for any other store."""
    parsed = urlparse(uri)
    # SQLAlchemy form: sqlite:///relative.db or sqlite:////absolute.db; bare sqlite:// is in memory.
    path = unquote(parsed.path)[1:]
    if parsed.scheme != "sqlite" or path in ("", ":memory:"):
        return None
    return Path(path)


def store_exists(uri: str) -> bool:
    """False for a SQLite store whose file is missing: reading it would create an empty database."""
    path = sqlite_path(uri)
    return path is None or path.exists()


def _quoted(value: str) -> str:
    if "'" in value:
        raise ValueError(f"filter value with a quote is not supported: {value!r}")
    return f"'{value}'"


def job_filter(study: str | None = None, dataset: str | None = None, parent_run_id: str | None = None) -> str:
    """The MLflow filter string selecting the runs of studies, jobs among them (`select_jobs` keeps
    those: MLflow's filters cannot say "role is job or absent"); every status is kept, to count
    the excluded."""
    clauses = [f"tags.`{STUDY_TAG}` IS NOT NULL" if study is None else f"tags.`{STUDY_TAG}` = {_quoted(study)}"]
    if dataset is not None:
        clauses.append(f"params.dataset = {_quoted(dataset)}")
    if parent_run_id is not None:
        clauses.append(f"tags.`{PARENT_TAG}` = {_quoted(parent_run_id)}")
    return " and ".join(clauses)


def select_jobs(runs: pd.DataFrame) -> pd.DataFrame:
    """The job runs among tidy runs of studies: tagged `asva.role=job`, or without a role and
    with every required param. A role-less run with some of them but not all is left out with a
    warning, since it was most likely meant as a job; one with none (another program's sweep
    parent) silently."""
    role = runs["role"]
    present = runs[list(REQUIRED_PARAMS)].notna()
    complete = present.all(axis=1)
    incomplete = runs[role.isna() & present.any(axis=1) & ~complete]
    if len(incomplete):
        missing = [param for param in REQUIRED_PARAMS if incomplete[param].isna().any()]
        log.warning(
            "left out %d run(s) tagged %s without %s that lack params %s (a job needs %s): %s",
            len(incomplete),
            STUDY_TAG,
            ROLE_TAG,
            ", ".join(missing),
            ", ".join(REQUIRED_PARAMS),
            ", ".join(incomplete["run_id"]),
        )
    return runs[role.isin([ROLE_JOB]) | (role.isna() & complete)].reset_index(drop=True)


def empty_runs() -> pd.DataFrame:
    return pd.DataFrame(columns=[*RUN_COLUMNS, *CONTRACT_PARAMS])


def tidy(raw: pd.DataFrame, experiment_names: dict[str, str]) -> pd.DataFrame:
    """MLflow's search_runs frame -> run columns, the contract params (strings) and every metric."""
    if raw.empty:
        return empty_runs()

    def column(name: str) -> pd.Series:
        return raw[name] if name in raw.columns else pd.Series(pd.NA, index=raw.index, dtype="object")

    runs = pd.DataFrame(
        {
            "run_id": raw["run_id"],
            "run_name": column("tags.mlflow.runName"),
            "experiment_id": raw["experiment_id"],
            "experiment": raw["experiment_id"].map(experiment_names),
            "status": raw["status"],
            "study": column(f"tags.{STUDY_TAG}"),
            "role": column(f"tags.{ROLE_TAG}"),
            "parent_run_id": column(f"tags.{PARENT_TAG}"),
            "start_time": raw["start_time"],
            MODEL_NAME: column(f"params.{MODEL_NAME_PARAM}"),
        }
    )
    for param in CONTRACT_PARAMS:
        runs[param] = column(f"params.{param}").astype("object")
    metrics = sorted(name.removeprefix("metrics.") for name in raw.columns if name.startswith("metrics."))
    for metric in metrics:
        runs[metric] = pd.to_numeric(raw[f"metrics.{metric}"], errors="coerce")
    return runs.sort_values("start_time", kind="stable").reset_index(drop=True)


def load_job_runs(
    study: str | None = None,
    dataset: str | None = None,
    experiment: str | None = None,
    parent_run_id: str | None = None,
    uri: str | None = None,
) -> pd.DataFrame:
    """Every job run (any status) matching the filters, one row each; empty when none (see the
    module docstring for what a job run is).

    `experiment` restricts the search to the experiment of that name; the other filters are tags
    and params. Unfinished runs are kept so that tables can count what they leave out.
    """
    uri = uri or tracking_uri()
    if not store_exists(uri):
        return empty_runs()
    mlflow.set_tracking_uri(uri)
    experiments = mlflow.search_experiments()
    if experiment is not None:
        experiments = [e for e in experiments if e.name == experiment]
    if not experiments:
        return empty_runs()
    with cyclic_gc_paused():
        raw = mlflow.search_runs(
            experiment_ids=[e.experiment_id for e in experiments],
            filter_string=job_filter(study, dataset, parent_run_id),
            output_format="pandas",
        )
    return select_jobs(tidy(raw, {e.experiment_id: e.name for e in experiments}))


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """MLflow's SQL store builds one ORM object per param, tag and metric row (about 170,000 for
    1,000 job runs) and the cyclic collector rescans them all at every allocation threshold: with
    it paused during the fetch, loading takes half the CPU time (benchmarks/bench_make_tables.py).
    Nothing allocated there is cyclic garbage that needs collecting before the fetch ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The metric columns of a tidy frame: the numeric columns that are not run columns or params."""
    fixed = {*RUN_COLUMNS, *CONTRACT_PARAMS}
    return [name for name in runs.columns if name not in fixed and pd.api.types.is_numeric_dtype(runs[name])]
