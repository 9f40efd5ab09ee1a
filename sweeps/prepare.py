"""Hydra entry point: the frozen first stage's latents of every training video, cached once for
every job with the same data and model (asva/prepare_job.py, docs/datasets.md).

    python sweeps/prepare.py data=avsync15 data.root=... model=dynamicrafter_6fps model.base_checkpoint=...
    python sweeps/prepare.py -m experiment=paper_6fps ... shards=64 'shard=range(0,64)' \
        hydra/launcher=slurm_a100 hydra.launcher.gpus_per_node=1      # a SLURM array of 64 shards

The config is sweeps/conf/prepare.yaml; it composes the data and model groups the jobs use.
"""

import hydra
from omegaconf import DictConfig

from asva import cli
from asva.config.commands import PrepareConfig
from asva.config.store import register

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="prepare")
def main(cfg: DictConfig) -> dict[str, float]:
    from asva.prepare_job import run_prepare  # when the job runs, not on import (see asva/cli.py run)

    return cli.run_command(cfg, PrepareConfig, run_prepare)


if __name__ == "__main__":
    main()
