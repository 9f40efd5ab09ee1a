"""Hydra entry point of the curation pipeline: `python sweeps/curate.py input=DIR output=DIR`.

The config is sweeps/conf/curate.yaml; with no input it curates the embedded pretraining pool.
"""

import hydra
from omegaconf import DictConfig

from asva import cli
from asva.config.schema import CurateConfig
from asva.config.store import register
from asva.curation_job import run_curation

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="curate")
def main(cfg: DictConfig) -> dict[str, float]:
    return cli.run_command(cfg, CurateConfig, run_curation)


if __name__ == "__main__":
    main()
