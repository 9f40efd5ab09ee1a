"""Hydra entry point of curation as a job of its own (asva/curation_job.py, docs/curation.md).

    python sweeps/curate.py input=DIR output=DIR                      # one process, then merged
    python sweeps/curate.py -m input=DIR output=DIR shards=8 'shard=range(0,8)' \
        hydra/launcher=slurm_cpu                                      # a SLURM array of 8 shards

The config is sweeps/conf/curate.yaml; with no input it curates the embedded pretraining pool.
"""

import hydra
from omegaconf import DictConfig

from asva import cli
from asva.config.commands import CurateConfig
from asva.config.store import register

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="curate")
def main(cfg: DictConfig) -> dict[str, float]:
    from asva.curation_job import run_curation  # when the job runs, not on import (see asva/cli.py run)

    return cli.run_command(cfg, CurateConfig, run_curation)


if __name__ == "__main__":
    main()
