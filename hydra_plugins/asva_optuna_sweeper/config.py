"""The sweeper's settings, registered as the `optuna` option of Hydra's `hydra/sweeper` group."""

from dataclasses import dataclass, field
from typing import Optional

from hydra.core.config_store import ConfigStore


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.asva_optuna_sweeper.sweeper.OptunaSweeper"
    # The job's returned metric to optimise, and which way.
    metric: str = "event_sync"
    direction: str = "maximize"  # maximize | minimize
    sampler: str = "tpe"  # tpe | grid (grid needs choice() or range() for every parameter)
    seed: int = 0
    # Completed trials the study should reach; a rerun (another SLURM job) only adds what is missing.
    n_trials: int = 6
    n_jobs: int = 1  # trials launched together, one launcher batch
    # The Optuna study; null: "<study>-<hash of the search space and fixed overrides>".
    study_name: Optional[str] = None
    # An RDB URL (sqlite:///..., postgresql+psycopg2://...); null: optuna.db beside the SQLite
    # tracking store (else in paths.runs_dir).
    storage: Optional[str] = None
    # A trial whose job stops sending heartbeats for grace_period seconds is failed and retried.
    heartbeat_interval: int = 30
    grace_period: Optional[int] = None  # null: 4 x heartbeat_interval
    max_retry: int = 3
    # The search space in Hydra's override grammar: choice(...), range(...), interval(...),
    # tag(log, interval(...)).
    params: dict[str, str] = field(default_factory=dict)


ConfigStore.instance().store(
    group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="asva_optuna_sweeper"
)
