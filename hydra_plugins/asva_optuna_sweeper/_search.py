"""The search behind `OptunaSweeper` (sweeper.py): ask trials, launch them as jobs, tell their metric.

Each trial is one ordinary job (one MLflow run nested under the sweep's parent run, tagged with its
trial number), launched by whatever launcher the sweep uses (in process, submitit, SLURM). The study
lives in an RDB, so several sweepers (SLURM jobs) can share it: each one first fails the trials whose
heartbeats stopped (their retries are queued), then asks only for the trials still missing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from asva.config.hashing import stable_hash
from asva.tracking.metadata import OPTUNA_STUDY_ENV, OPTUNA_TRIAL_ENV
from asva.tracking.store import sqlite_path, tracking_uri
from hydra_plugins.asva_optuna_sweeper import _space as space
from hydra_plugins.asva_optuna_sweeper._heartbeat import HEARTBEAT_ENV, STORAGE_ENV, TRIAL_ID_ENV

log = logging.getLogger(__name__)

# Heartbeats, stale-trial failing and their retry callback are marked experimental in optuna 5 (they
# have been stable since 2.x); and ask() warns that heartbeats are meant for Study.optimize, which a
# sweeper cannot use: here the jobs send them (_heartbeat.py).
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")

STORAGE_FILE = "optuna.db"
RESULTS_FILE = "optimization_results.yaml"
SQLITE_BUSY_TIMEOUT_S = 60


def default_storage(runs_dir: str) -> str:
    """optuna.db beside the SQLite tracking store, else in the runs folder."""
    store = sqlite_path(tracking_uri())
    folder = store.parent if store is not None else Path(runs_dir)
    return f"sqlite:///{(folder / STORAGE_FILE).resolve()}"


def open_storage(url: str, heartbeat_interval: int, grace_period: int, max_retry: int) -> RDBStorage:
    """The study's storage; a fresh SQLite file gets its tables once, under a file lock."""
    path = sqlite_path(url)
    engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}} if path is not None else {}
    lock: Any = contextlib.nullcontext()
    if path is not None:
        from filelock import FileLock

        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(f"{path}.lock", timeout=600)
    with lock:
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
        )


class Search:
    """One sweeper's share of a study: runs trials until the study has `n_trials` completed ones."""

    def __init__(self, settings: dict[str, Any], config: DictConfig, launcher: Launcher, sweeper: Sweeper) -> None:
        self.metric = settings["metric"]
        self.direction = settings["direction"]
        self.sampler_name = settings["sampler"]
        self.seed = settings["seed"]
        self.n_trials = settings["n_trials"]
        self.n_jobs = settings["n_jobs"]
        self.study_name = settings["study_name"]
        self.storage_url = settings["storage"]
        self.heartbeat_interval = settings["heartbeat_interval"]
        self.grace_period = settings["grace_period"] or 4 * self.heartbeat_interval
        self.max_retry = settings["max_retry"]
        self.params = dict(settings["params"])
        self.config = config
        self.launcher = launcher
        self.sweeper = sweeper

    def _sampler(self, distributions: dict, trials_so_far: int) -> optuna.samplers.BaseSampler:
        """A sampler seeded from `seed` and this sweeper's place in the study: a rerun, or another
        SLURM job joining the study, must not replay the first sweeper's random draws."""
        seed = int(stable_hash(self.seed, trials_so_far, os.environ.get("SLURM_JOB_ID", ""), length=8), 16)
        if self.sampler_name == "grid":
            return optuna.samplers.GridSampler(space.grid(distributions), seed=seed)
        return optuna.samplers.TPESampler(seed=seed)

    def _trial_overrides(self, trial: optuna.Trial, fixed: list[str], study_name: str) -> list[str]:
        env = {
            OPTUNA_TRIAL_ENV: trial.number,
            OPTUNA_STUDY_ENV: study_name,
            TRIAL_ID_ENV: trial._trial_id,
            STORAGE_ENV: self.storage_url,
            HEARTBEAT_ENV: self.heartbeat_interval,
        }
        return [
            *fixed,
            *(space.as_override(key, value) for key, value in trial.params.items()),
            *(space.as_override(f"++hydra.job.env_set.{key}", str(value)) for key, value in env.items()),
        ]

    def run(self, arguments: list[str]) -> Any:
        distributions, fixed = space.parse(self.params, arguments)
        if not distributions:
            raise space.SearchSpaceError("hydra.sweeper.params: nothing to search over")
        self.storage_url = self.storage_url or default_storage(self.config.paths.runs_dir)
        study_name = (
            self.study_name
            or f"{self.config.study}-{stable_hash(sorted((k, repr(d)) for k, d in distributions.items()), sorted(fixed), length=8)}"
        )
        storage = open_storage(self.storage_url, self.heartbeat_interval, self.grace_period, self.max_retry)
        study = optuna.create_study(
            study_name=study_name, storage=storage, direction=self.direction, load_if_exists=True
        )
        study.sampler = self._sampler(distributions, len(study.get_trials(deepcopy=False)))
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        log.info("optuna study %s in %s: %d completed trials wanted", study_name, self.storage_url, self.n_trials)

        returns = []
        job_index = 0
        while True:
            optuna.storages.fail_stale_trials(study)  # killed trials: failed, and their retries queued
            states = [trial.state for trial in study.get_trials(deepcopy=False)]
            complete, running = states.count(TrialState.COMPLETE), states.count(TrialState.RUNNING)
            wanted = min(self.n_jobs, self.n_trials - complete - running)
            if wanted <= 0:
                if running == 0:
                    break
                log.info("%d trials are running in other jobs; waiting for them", running)
                time.sleep(self.heartbeat_interval)
                continue
            trials = [study.ask(distributions) for _ in range(wanted)]
            for trial in trials:  # so that a trial killed before its job starts is noticed too
                storage.record_heartbeat(trial._trial_id)
            batch = [self._trial_overrides(trial, fixed, study_name) for trial in trials]
            self.sweeper.validate_batch_is_legal(batch)
            try:
                results = self.launcher.launch(batch, initial_job_idx=job_index)
            except BaseException:  # a job exited the process (sys.exit) or the user interrupted
                for trial in trials:
                    if storage.get_trial(trial._trial_id).state == TrialState.RUNNING:
                        study.tell(trial, state=TrialState.FAIL)
                raise
            job_index += len(batch)
            errors = [self._tell(study, trial, result) for trial, result in zip(trials, results)]
            returns.append(results)
            failed = [error for error in errors if error is not None]
            if failed:  # every trial of the batch was told first: none is left running
                raise failed[0]

        self._save_results(study, sweep_dir)
        return returns

    def _tell(self, study: optuna.Study, trial: optuna.Trial, result: Any) -> BaseException | None:
        """Record the trial's outcome; returns the job's error when it has no objective value."""
        try:
            metrics = result.return_value  # raises the job's exception when it failed
        except Exception as error:
            study.tell(trial, state=TrialState.FAIL)
            return error
        value = (metrics or {}).get(self.metric)
        if value is None:
            study.tell(trial, state=TrialState.FAIL)
            return RuntimeError(
                f"hydra.sweeper.metric: trial {trial.number}'s job returned no {self.metric!r} (got {sorted(metrics or {})})"
            )
        study.tell(trial, float(value))
        log.info("trial %d: %s = %.4f with %s", trial.number, self.metric, value, trial.params)
        return None

    def _save_results(self, study: optuna.Study, sweep_dir: Path) -> None:
        best = study.best_trial
        results = {
            "study": study.study_name,
            "metric": self.metric,
            "direction": self.direction,
            "best_trial": best.number,
            "best_value": best.value,
            "best_params": best.params,
        }
        OmegaConf.save(OmegaConf.create(results), sweep_dir / RESULTS_FILE)
        log.info("best trial %d: %s = %.4f with %s", best.number, self.metric, best.value, best.params)
