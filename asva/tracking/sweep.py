"""One parent MLflow run per Hydra multirun, created before any job starts.

Hydra calls `on_multirun_start` in the launching process, before the launcher starts the jobs
(locally, through submitit, or on SLURM), so there is exactly one parent even when jobs run in
parallel. Its id is written to the sweep folder, where every job (any process, any node with the
shared file system) reads it to nest its run.

Running the same sweep again (same study, same overrides, same grid) reuses its parent run: the
jobs that finished are skipped by `run_job`, the others resume or start under the same parent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from asva.config.hashing import stable_hash
from asva.files import write_text
from asva.tracking.runs import RunLogger, client, experiment_id
from asva.tracking.store import ROLE_SWEEP, ROLE_TAG, SWEEP_TAG

SWEEP_KEY_TAG = "asva.sweep_key"

PARENT_RUN_FILE = "mlflow_parent_run_id"


def sweep_key(config: DictConfig) -> str:
    """What identifies a sweep across reruns: its study, its command-line overrides and its grid."""
    grid = OmegaConf.to_container(config.hydra.sweeper.get("params") or {}, resolve=True)
    return stable_hash(config.study, sorted(config.hydra.overrides.task), grid, length=16)


def existing_parent(study: str, key: str) -> RunLogger | None:
    runs = client().search_runs(
        [experiment_id(study)],
        filter_string=f"tags.`{ROLE_TAG}` = '{ROLE_SWEEP}' and tags.`{SWEEP_KEY_TAG}` = '{key}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return RunLogger(runs[0].info.run_id) if runs else None


class MLflowSweepCallback(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        overrides = " ".join(config.hydra.overrides.task)
        key = sweep_key(config)
        parent = existing_parent(config.study, key)
        if parent is not None:
            parent.reopen()
        else:
            parent = RunLogger.create(
                study=config.study,
                role=ROLE_SWEEP,
                name=f"{config.study} sweep {sweep_dir.name}",
                tags={SWEEP_TAG: str(sweep_dir.resolve()), "asva.overrides": overrides, SWEEP_KEY_TAG: key},
            )
        write_text(sweep_dir / PARENT_RUN_FILE, parent.run_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        marker = Path(config.hydra.sweep.dir) / PARENT_RUN_FILE
        if marker.exists():
            RunLogger(marker.read_text().strip()).finish()


def parent_run_id() -> str | None:
    """The current multirun's parent run, or None outside a multirun."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode is None or hydra_cfg.mode.name != "MULTIRUN":
        return None
    marker = Path(hydra_cfg.sweep.dir) / PARENT_RUN_FILE
    return marker.read_text().strip() if marker.exists() else None
