"""What a Hydra entry point calls: typed config in, one job run, user errors as one line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TypeVar

from omegaconf import DictConfig

from asva.config.build import build_config
from asva.config.schema import ExperimentConfig
from asva.errors import UserError

log = logging.getLogger("asva")

Config = TypeVar("Config")


def run_command(
    cfg: DictConfig, schema: type[Config], command: Callable[[Config], dict[str, float]]
) -> dict[str, float]:
    """A non-sweep entry point: the typed config to `command`; a UserError exits 2 with one line."""
    try:
        typed = build_config(cfg)
        assert isinstance(typed, schema)
        return command(typed)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def run(cfg: DictConfig) -> dict[str, float] | None:
    """Run one job; a UserError (bad value, path or file) exits with status 2 and one line."""
    # Imported here, not at the top: a process pool the job starts (the leak check's) spawns workers
    # that import the entry point, hence this module, again; torch, MLflow and diffusers would cost
    # each of them seconds for code it never runs.
    from asva import distributed
    from asva.experiment import run_job
    from asva.tracking.sweep import parent_run_id

    try:
        experiment = build_config(cfg)
        assert isinstance(experiment, ExperimentConfig)
        return run_job(experiment, parent_run_id())
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    finally:
        distributed.shutdown()  # under torchrun or a multi-task SLURM job: leave the process group
