"""Applies the `tracking` config group (sweeps/conf/tracking/) in every process that writes runs.

Hydra calls it in the launching process before the sweep's parent run is created and before any job
starts (so a fresh SQLite store gets its schema exactly once, there), and again in each job's own
process, wherever the launcher put it (a submitit subprocess, a SLURM node).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from asva.config.build import build_config
from asva.errors import UserError
from asva.tracking.store import prepare_store


def use_tracking_config(config: DictConfig) -> None:
    """Point MLflow at the configured store (MLFLOW_TRACKING_URI) and prepare it for writers."""
    tracking = config.get("tracking")
    if tracking is None:
        return
    try:
        build_config(tracking, key="tracking")  # TrackingConfig checks its values when built
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    if tracking.uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking.uri
    prepare_store()


class TrackingStoreCallback(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        use_tracking_config(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        use_tracking_config(config)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        use_tracking_config(config)
