"""Hydra entry point of the curation pipeline: `python sweeps/curate.py input=DIR output=DIR`.

The config is sweeps/conf/curate.yaml; with no input it curates the embedded pretraining pool.
"""

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from asva.config.schema import CurateConfig
from asva.config.store import register
from asva.curation_job import run_curation
from asva.errors import UserError

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="curate")
def main(cfg: DictConfig) -> dict[str, float]:
    try:
        curate = OmegaConf.to_object(cfg)
        assert isinstance(curate, CurateConfig)
        return run_curation(curate)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
