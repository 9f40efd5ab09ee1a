"""Hydra entry point of the kshot study: the config is sweeps/conf/kshot.yaml."""

import hydra
from omegaconf import DictConfig

from asva import cli
from asva.config.store import register

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="kshot")
def main(cfg: DictConfig) -> dict[str, float] | None:
    return cli.run(cfg)


if __name__ == "__main__":
    main()
