"""Hydra entry point of the Optuna search: the config is sweeps/conf/search.yaml (run with -m)."""

import hydra
from omegaconf import DictConfig

from asva import cli
from asva.config.store import register

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="search")
def main(cfg: DictConfig) -> dict[str, float] | None:
    return cli.run(cfg)


if __name__ == "__main__":
    main()
