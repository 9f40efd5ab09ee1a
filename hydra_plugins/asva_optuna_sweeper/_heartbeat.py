"""Heartbeats from the process that runs a trial's job, wherever the launcher put it.

The sweeper passes the trial to its job through `hydra.job.env_set`; while the job runs, a thread
records the trial's heartbeat in the study's storage. When the job is killed (SIGKILL, a node lost,
a SLURM time limit) the heartbeats stop, and the next sweeper of the study fails the trial and
enqueues it again (RetryHeartbeatStaleTrialCallback).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)

TRIAL_ID_ENV = "ASVA_OPTUNA_TRIAL_ID"
STORAGE_ENV = "ASVA_OPTUNA_STORAGE"
HEARTBEAT_ENV = "ASVA_OPTUNA_HEARTBEAT_S"


class Heartbeat:
    """Records `trial_id`'s heartbeat every `interval` seconds until stopped."""

    def __init__(self, storage_url: str, trial_id: int, interval: int):
        from optuna.storages import RDBStorage

        self._storage = RDBStorage(storage_url, heartbeat_interval=interval, skip_table_creation=True)
        self._trial_id = trial_id
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"optuna-heartbeat-{trial_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while True:
            try:
                self._storage.record_heartbeat(self._trial_id)
            except Exception as error:  # a missed beat is not worth killing the job for
                log.warning("optuna heartbeat of trial %d not recorded: %s", self._trial_id, error)
            if self._stop.wait(self._interval):
                return


class TrialHeartbeatCallback(Callback):
    """Beats for the trial named in the job's environment; does nothing for other jobs."""

    def __init__(self) -> None:
        self._heartbeat: Heartbeat | None = None

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if TRIAL_ID_ENV not in os.environ:
            return
        self._heartbeat = Heartbeat(
            os.environ[STORAGE_ENV], int(os.environ[TRIAL_ID_ENV]), int(os.environ[HEARTBEAT_ENV])
        )
        self._heartbeat.start()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
