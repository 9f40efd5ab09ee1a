"""`OptunaSweeper`: the Hydra plugin class. Hydra imports this module in every application to find
its plugins, so it stays light: optuna is imported only when a search runs (_search.py)."""

from __future__ import annotations

from typing import Any, Optional

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("tpe", "grid")


class OptunaSweeper(Sweeper):
    def __init__(
        self,
        metric: str,
        direction: str,
        sampler: str,
        seed: int,
        n_trials: int,
        n_jobs: int,
        study_name: Optional[str],
        storage: Optional[str],
        heartbeat_interval: int,
        grace_period: Optional[int],
        max_retry: int,
        params: dict[str, str],
    ) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"hydra.sweeper.direction: must be one of {DIRECTIONS}, got {direction!r}")
        if sampler not in SAMPLERS:
            raise ValueError(f"hydra.sweeper.sampler: must be one of {SAMPLERS}, got {sampler!r}")
        for key, value in (("n_trials", n_trials), ("n_jobs", n_jobs), ("heartbeat_interval", heartbeat_interval)):
            if value <= 0:
                raise ValueError(f"hydra.sweeper.{key}: must be > 0, got {value}")
        if grace_period is not None and grace_period <= heartbeat_interval:
            raise ValueError(
                f"hydra.sweeper.grace_period: must exceed heartbeat_interval ({heartbeat_interval}), got {grace_period}"
            )
        if max_retry < 0:
            raise ValueError(f"hydra.sweeper.max_retry: must be >= 0, got {max_retry}")
        self.settings: dict[str, Any] = dict(
            metric=metric,
            direction=direction,
            sampler=sampler,
            seed=seed,
            n_trials=n_trials,
            n_jobs=n_jobs,
            study_name=study_name,
            storage=storage,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            max_retry=max_retry,
            params=dict(params),
        )
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from hydra_plugins.asva_optuna_sweeper._search import Search

        assert self.config is not None and self.launcher is not None
        return Search(self.settings, self.config, self.launcher, self).run(arguments)
