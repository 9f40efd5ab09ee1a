"""Hydra entry point of the encoder layers study: the config is sweeps/conf/encoder_layers.yaml."""

import hydra
from omegaconf import DictConfig

from asva import cli
from asva.config.store import register

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="encoder_layers")
def main(cfg: DictConfig) -> dict[str, float] | None:
    return cli.run(cfg)


if __name__ == "__main__":
    main()
